"""Answering a query on a Spark cluster: the same SQL text as `vpnreg analytics`, run by Spark SQL
over the same directory layout (on HDFS, S3 or a shared file system). docs/scaling.md.

    spark-submit --py-files vpnreg.zip src/vpnreg/analytics/spark_job.py \\
        blocks-per-protocol --data s3a://bucket/reports --from 2026-01-01 --to 2026-12-31

(vpnreg.zip: `cd src && zip -r ../vpnreg.zip vpnreg`, so the driver imports the same queries).
PySpark is not a dependency of vpnreg: this module is imported only where Spark runs it, and by
the test that checks that Spark and DuckDB agree.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.pandas.types import from_arrow_schema

from vpnreg.analytics.layout import DATASETS, Dataset
from vpnreg.analytics.queries import FIRST_DAY, LAST_DAY, QUERIES, Query
from vpnreg.analytics.result import OutputFormat, Result

#: Spark settings the queries rely on: UTC (the files' timestamps are UTC, and `day` is a UTC
#: day), and partition columns typed from their directory names (`day` as a DATE).
SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "true",
}


def register_views(spark: SparkSession, data: str) -> None:
    """A temporary view per dataset over its directory under `data` (any Hadoop file system)."""
    for dataset in DATASETS:
        _view(spark, data, dataset).createOrReplaceTempView(dataset.name)


def _view(spark: SparkSession, data: str, dataset: Dataset) -> DataFrame:
    where = f"{data.rstrip('/')}/{dataset.name}"
    # the schema given, not inferred: `day` is a DATE, and nothing is sampled first
    schema = from_arrow_schema(dataset.read_schema())
    try:
        return spark.read.schema(schema).option("basePath", where).parquet(where)
    except AnalysisException as err:
        if err.getCondition() != "PATH_NOT_FOUND":
            raise
        return spark.createDataFrame([], schema)  # no file of this dataset yet: empty


def run(
    spark: SparkSession,
    query: Query,
    *,
    data: str,
    first_day: dt.date | None = None,
    last_day: dt.date | None = None,
) -> Result:
    """`query` over the files under `data`, for the days first_day..last_day (default: all)."""
    register_views(spark, data)
    sql = query.render(
        engine="spark", first_day=first_day or FIRST_DAY, last_day=last_day or LAST_DAY
    )
    frame = spark.sql(sql)
    return Result(tuple(frame.columns), [tuple(row) for row in frame.collect()])


def session(
    app_name: str = "vpnreg-analytics",
    master: str | None = None,
    settings: dict[str, str] | None = None,
) -> SparkSession:
    """A Spark session with SETTINGS and `settings` (`master` None: spark-submit's)."""
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
    for key, value in (SETTINGS | (settings or {})).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vpnreg.analytics.spark_job")
    parser.add_argument("query", choices=sorted(QUERIES))
    parser.add_argument("--data", required=True, help="The export's directory (any Hadoop URI).")
    parser.add_argument("--from", dest="first_day", type=dt.date.fromisoformat)
    parser.add_argument("--to", dest="last_day", type=dt.date.fromisoformat)
    parser.add_argument("--format", choices=[f.value for f in OutputFormat], default="csv")
    args = parser.parse_args(argv)
    spark = session()
    try:
        result = run(
            spark,
            QUERIES[args.query],
            data=args.data,
            first_day=args.first_day,
            last_day=args.last_day,
        )
    finally:
        spark.stop()
    sys.stdout.write(result.render(OutputFormat(args.format)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

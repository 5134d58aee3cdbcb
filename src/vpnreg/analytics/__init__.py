"""Gateway reports as day-partitioned Parquet, and the common questions asked of them (ADR 0015).

`layout` says where the files are and what they hold, `export` writes them from the registry,
`queries` holds the SQL (one text for DuckDB and Spark SQL), `duckdb_runner` answers a query on
one machine and `spark_job` on a cluster. The registry's database stays the record; the files
are a copy for analysis that outlives its retention.
"""

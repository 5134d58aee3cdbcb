"""The gateway agent: traffic sources, feed client, enforcement back ends, verdict log, metrics."""

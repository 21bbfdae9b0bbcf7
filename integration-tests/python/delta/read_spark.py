"""Reads a onepipe clean archive as a Delta Lake table with Apache Spark and delta-spark
(local mode), and prints what Spark sees as JSON: the current version's rows, the rows of
an older version by time travel (`versionAsOf`), and the table's history.

Spark cannot fetch its jars here, so the Delta jars come from ~/.m2, where
`make delta-readers` puts them with `mvn dependency:get` (DELTA_SPARK_JARS overrides).
Run with the Python of the delta virtualenv (pyspark and delta-spark).

    read_spark.py TABLE_DIR KEY --version N
"""

import argparse
import json
import os
import pathlib

from pyspark.sql import SparkSession

DELTA = "4.0.0"


def delta_jars():
    if os.environ.get("DELTA_SPARK_JARS"):
        return os.environ["DELTA_SPARK_JARS"].split(",")
    m2 = pathlib.Path.home() / ".m2" / "repository" / "io" / "delta"
    jars = [m2 / f"delta-spark_2.13/{DELTA}/delta-spark_2.13-{DELTA}.jar",
            m2 / f"delta-storage/{DELTA}/delta-storage-{DELTA}.jar"]
    for jar in jars:
        if not jar.exists():
            raise SystemExit(f"{jar} is missing: run `make delta-readers` (mvn dependency:get)")
    return [str(j) for j in jars]


def plain(rows, key):
    """Rows as JSON-ready dicts sorted by key; dates and timestamps as ISO strings."""
    out = []
    for r in rows:
        d = r.asDict()
        out.append({k: (v if isinstance(v, (int, float, str, type(None))) else v.isoformat())
                    for k, v in d.items()})
    return sorted(out, key=lambda r: r[key])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("table")
    p.add_argument("key")
    p.add_argument("--version", type=int, required=True)
    args = p.parse_args()

    spark = (
        SparkSession.builder.master("local[1]").appName("onepipe-delta-check")
        .config("spark.jars", ",".join(delta_jars()))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    path = str(pathlib.Path(args.table).resolve())
    current = spark.read.format("delta").load(path)
    old = spark.read.format("delta").option("versionAsOf", args.version).load(path)
    history = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").select("version", "operation").collect()
    out = {
        "schema": {f.name: f.dataType.simpleString() for f in current.schema.fields},
        "spark": plain(current.collect(), args.key),
        "spark_as_of": plain(old.collect(), args.key),
        "history": sorted(r["version"] for r in history),
    }
    spark.stop()
    print(json.dumps(out))


if __name__ == "__main__":
    main()

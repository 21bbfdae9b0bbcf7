"""Reads a onepipe clean archive as a Delta Lake table with engines others wrote, and
prints what each sees as JSON: the `deltalake` package (newest version and, with
--version, an older one by time travel) and DuckDB's `delta_scan`.

Run with the Python of the delta virtualenv that .ci/run makes (deltalake, duckdb and
duckdb-ext-delta at duckdb's version), not with the test's own Python.

    read_delta.py TABLE_DIR KEY [--version N]
"""

import argparse
import json

import pathlib
import sysconfig

import deltalake
import duckdb


def rows_of(table):
    """Rows as {key: row} with values JSON can carry."""
    return table.to_pylist()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("table")
    p.add_argument("key")
    p.add_argument("--version", type=int)
    args = p.parse_args()

    out = {}
    dt = deltalake.DeltaTable(args.table)
    out["version"] = dt.version()
    out["partition_columns"] = dt.metadata().partition_columns
    out["schema"] = {f.name: str(f.type) for f in dt.schema().fields}
    cols = [f.name for f in dt.schema().fields]
    current = dt.to_pyarrow_table()
    out["deltalake"] = sorted(
        ({k: (str(v) if not isinstance(v, (int, float, str, type(None))) else v)
          for k, v in r.items()} for r in current.to_pylist()),
        key=lambda r: r[args.key],
    )
    history = dt.history()
    out["history"] = [
        {k: h.get(k) for k in ("version", "operation", "onepipe")} for h in history
    ]
    if args.version is not None:
        old_table = deltalake.DeltaTable(args.table, version=args.version)
        out["ids"] = [old_table.metadata().id, dt.metadata().id]
        old = old_table.to_pyarrow_table()
        out["deltalake_as_of"] = sorted(
            ({k: (str(v) if not isinstance(v, (int, float, str, type(None))) else v)
              for k, v in r.items()} for r in old.to_pylist()),
            key=lambda r: r[args.key],
        )

    # duckdb-ext-delta ships the extension as a file for this duckdb version; there is no
    # extension download here.
    con = duckdb.connect(config={
        "extension_directory": str(pathlib.Path(sysconfig.get_paths()["purelib"]) / "duckdb_ext" / "extensions"),
        "autoinstall_known_extensions": False,
    })
    con.execute("LOAD delta")
    rel = con.execute(f"SELECT * FROM delta_scan('{args.table}')")
    names = [d[0] for d in rel.description]
    duck = [dict(zip(names, r)) for r in rel.fetchall()]
    out["duckdb"] = sorted(
        ({k: (str(v) if not isinstance(v, (int, float, str, type(None))) else v)
          for k, v in r.items()} for r in duck),
        key=lambda r: r[args.key],
    )
    out["columns"] = cols
    print(json.dumps(out))


if __name__ == "__main__":
    main()

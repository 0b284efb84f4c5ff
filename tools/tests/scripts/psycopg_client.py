"""psycopg 3 against `strata serve`: run by tools/tests/server.rs (psycopg_connects_...).

Usage: python3 psycopg_client.py PORT. Prints "ok" at the end; any failure raises.
Covers what applications do with psycopg: server-side parameter binding over the extended
protocol (text and binary), the common types and NULL, rollback, `with conn.transaction()`,
executemany and COPY FROM STDIN / TO STDOUT through cursor.copy.
"""

import datetime
import decimal
import sys

import psycopg

port = int(sys.argv[1])
dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"

with psycopg.connect(dsn) as conn:
    cur = conn.cursor()
    cur.execute(
        "CREATE TABLE items (id INT PRIMARY KEY, name TEXT, price NUMERIC(10,2), "
        "ok BOOLEAN, day DATE, at TIMESTAMP, data BYTEA)"
    )
    conn.commit()

    row = (
        1,
        "widget",
        decimal.Decimal("9.99"),
        True,
        datetime.date(2024, 2, 29),
        datetime.datetime(2024, 2, 29, 13, 14, 15, 123456),
        b"\x00\x01\xffbytes",
    )
    cur.execute("INSERT INTO items VALUES (%s, %s, %s, %s, %s, %s, %s)", row)
    cur.execute("INSERT INTO items VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (2, None, None, None, None, None, None))
    conn.commit()
    cur.execute("SELECT * FROM items WHERE id = %s", (1,))
    assert cur.fetchone() == row, "text round trip"
    cur.execute("SELECT name, price, data FROM items WHERE id = %s", (2,))
    assert cur.fetchone() == (None, None, None), "NULLs"

    # Binary parameters and results.
    bcur = conn.cursor(binary=True)
    bcur.execute("SELECT * FROM items WHERE id = %b", (1,))
    assert bcur.fetchone() == row, "binary round trip"
    bcur.execute("SELECT count(*) FROM items WHERE ok = %b AND price > %b",
                 (True, decimal.Decimal("1.5")))
    assert bcur.fetchone()[0] == 1

    # A transaction rolled back leaves nothing.
    cur.execute("INSERT INTO items (id, name) VALUES (%s, %s)", (3, "gone"))
    conn.rollback()
    cur.execute("SELECT count(*) FROM items WHERE id = 3")
    assert cur.fetchone()[0] == 0, "rollback"

    # with conn.transaction(): committed on success, rolled back on an exception.
    with conn.transaction():
        cur.execute("INSERT INTO items (id, name) VALUES (%s, %s)", (4, "kept"))
    try:
        with conn.transaction():
            cur.execute("INSERT INTO items (id, name) VALUES (%s, %s)", (5, "dropped"))
            cur.execute("SELECT 1/0")
    except psycopg.errors.DivisionByZero:
        pass
    else:
        raise AssertionError("division by zero did not fail")
    cur.execute("SELECT id FROM items ORDER BY id")
    assert [r[0] for r in cur.fetchall()] == [1, 2, 4], "transaction blocks"

    # A unique violation carries its SQLSTATE.
    try:
        cur.execute("INSERT INTO items (id) VALUES (%s)", (1,))
    except psycopg.errors.UniqueViolation as e:
        assert e.sqlstate == "23505"
        conn.rollback()
    else:
        raise AssertionError("duplicate key accepted")

    cur.executemany(
        "INSERT INTO items (id, name, price) VALUES (%s, %s, %s)",
        [(10 + i, f"bulk{i}", decimal.Decimal(i) / 4) for i in range(20)],
    )
    conn.commit()
    cur.execute("SELECT count(*), sum(price) FROM items WHERE id >= 10")
    assert cur.fetchone() == (20, decimal.Decimal("47.50")), "executemany"

    with cur.copy("COPY items (id, name, day) FROM STDIN") as copy:
        for i in range(100, 105):
            copy.write_row((i, f"copied {i}", datetime.date(2024, 1, 1 + i - 100)))
    conn.commit()
    cur.execute("SELECT count(*) FROM items WHERE id BETWEEN 100 AND 104")
    assert cur.fetchone()[0] == 5, "copy from stdin"
    out = []
    with cur.copy("COPY (SELECT id, name FROM items WHERE id >= 100 ORDER BY id) TO STDOUT") as copy:
        for r in copy.rows():
            out.append(r)
    assert out[0] == ("100", "copied 100") and len(out) == 5, out

    # Autocommit and server-side settings.
    conn.commit()
    conn.autocommit = True
    cur.execute("SELECT current_setting(%s)", ("server_version_num",))
    assert int(cur.fetchone()[0]) >= 150000
    assert conn.info.server_version >= 150000

print("ok")

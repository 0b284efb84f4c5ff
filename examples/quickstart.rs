//! Quick start: open a database file, create a table, write in a transaction, query.
//!
//! Run: `cargo run --release --example quickstart [PATH]` (default: a temporary directory).

use strata::{Database, Value};

fn main() -> strata::Result<()> {
    let dir = std::env::temp_dir().join(format!("strata-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    let path = std::env::args()
        .nth(1)
        .map(Into::into)
        .unwrap_or_else(|| dir.join("quickstart.db"));
    let db = Database::open(&path)?;

    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS books (
             id SERIAL PRIMARY KEY,
             title TEXT NOT NULL,
             year INT CHECK (year > 0),
             price NUMERIC(8,2)
         );
         CREATE INDEX IF NOT EXISTS books_year ON books USING dense (year);",
    )?;

    let mut tx = db.transaction()?;
    for (title, year, price) in [
        ("Transaction Processing", 1992, "89.95"),
        ("Readings in Database Systems", 2015, "0.00"),
        ("Architecture of a Database System", 2007, "25.00"),
    ] {
        tx.execute(
            "INSERT INTO books (title, year, price) VALUES ($1, $2, $3::numeric)",
            &[title.into(), Value::Int4(year), price.into()],
        )?;
    }
    tx.commit()?;

    for row in db.query(
        "SELECT id, title, year, price FROM books WHERE year >= $1 ORDER BY year",
        &[Value::Int4(2000)],
    )? {
        let id: i64 = row.get(0)?;
        let title: String = row.get(1)?;
        let year: i32 = row.get(2)?;
        println!(
            "{id:>3}  {year}  {title}  ({})",
            row.text(3).unwrap_or_default()
        );
    }
    let plan = db.query("EXPLAIN SELECT title FROM books WHERE year = 2007", &[])?;
    for line in plan {
        println!("{}", line.text(0).unwrap_or_default());
    }
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

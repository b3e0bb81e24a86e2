//! What tests read from (and, to set up a case, write to) a test's database,
//! alike on both backends. SQL is written once with `?1`-style parameters
//! (`$1` on PostgreSQL) in the dialect both share; values come back as
//! [`Value`] or, typed, through [`FromValue`] and [`FromRow`], which panic on
//! a type that does not match just as `rusqlite`'s `get` fails.

use std::path::Path;

use postgres::types::{ToSql, Type};

use crate::backend::{off_runtime, postgres_url};

/// One cell: schema integers are `INTEGER` / `bigint`, blobs `BLOB` / `bytea`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Int(n)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Text(s)
    }
}

impl From<&String> for Value {
    fn from(s: &String) -> Value {
        Value::Text(s.clone())
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Value {
        Value::Blob(b)
    }
}

/// A Rust type one cell converts to.
pub trait FromValue: Sized {
    /// The value, or the cell back when it holds something else.
    fn from_value(v: Value) -> Result<Self, Value>;
}

impl FromValue for Value {
    fn from_value(v: Value) -> Result<Self, Value> {
        Ok(v)
    }
}

impl FromValue for i64 {
    fn from_value(v: Value) -> Result<Self, Value> {
        match v {
            Value::Int(n) => Ok(n),
            other => Err(other),
        }
    }
}

impl FromValue for String {
    fn from_value(v: Value) -> Result<Self, Value> {
        match v {
            Value::Text(s) => Ok(s),
            other => Err(other),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(v: Value) -> Result<Self, Value> {
        match v {
            Value::Blob(b) => Ok(b),
            other => Err(other),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: Value) -> Result<Self, Value> {
        match v {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// Converts cell `i` of a row, naming it when the type does not match.
fn cell<T: FromValue>(row: &mut [Value], i: usize) -> T {
    let v = std::mem::replace(&mut row[i], Value::Null);
    T::from_value(v)
        .unwrap_or_else(|v| panic!("column {i} holds {v:?}, not {}", std::any::type_name::<T>()))
}

/// A Rust tuple one row converts to.
pub trait FromRow: Sized {
    fn from_row(row: Vec<Value>) -> Self;
}

macro_rules! tuple_from_row {
    ($($t:ident $i:tt),+) => {
        impl<$($t: FromValue),+> FromRow for ($($t,)+) {
            fn from_row(mut row: Vec<Value>) -> Self {
                ($(cell::<$t>(&mut row, $i),)+)
            }
        }
    };
}

tuple_from_row!(A 0, B 1);
tuple_from_row!(A 0, B 1, C 2);
tuple_from_row!(A 0, B 1, C 2, D 3);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);

/// Column names and rows of one statement.
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// A connection to the database of one data dir (or one SQLite file).
pub enum TestDb {
    Sqlite(rusqlite::Connection),
    /// Connected per statement, off the runtime (see [`off_runtime`]).
    Postgres(String),
}

impl TestDb {
    /// The database of the service whose data is in `data_dir`.
    pub fn open(data_dir: &Path) -> TestDb {
        match postgres_url(data_dir) {
            Some(url) => TestDb::Postgres(url),
            None => TestDb::sqlite_file(&data_dir.join("receiver.db")),
        }
    }

    /// A SQLite file (a backup, say) whatever the run's backend.
    pub fn sqlite_file(path: &Path) -> TestDb {
        TestDb::Sqlite(rusqlite::Connection::open(path).unwrap())
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, TestDb::Postgres(_))
    }

    /// Every row of `sql` with its column names.
    pub fn query_rows(&self, sql: &str, params: &[Value]) -> Rows {
        match self {
            TestDb::Sqlite(conn) => sqlite_query(conn, sql, params),
            TestDb::Postgres(url) => postgres_run(url, sql, params, Run::Query).0,
        }
    }

    /// Every row of `sql`.
    pub fn query(&self, sql: &str, params: &[Value]) -> Vec<Vec<Value>> {
        self.query_rows(sql, params).rows
    }

    /// Runs a statement that returns no rows; how many rows it changed.
    pub fn execute(&self, sql: &str, params: &[Value]) -> u64 {
        match self {
            TestDb::Sqlite(conn) => {
                conn.execute(
                    sql,
                    rusqlite::params_from_iter(params.iter().map(to_sqlite)),
                )
                .unwrap_or_else(|e| panic!("{sql}: {e}")) as u64
            }
            TestDb::Postgres(url) => postgres_run(url, sql, params, Run::Execute).1,
        }
    }

    /// Every row of `sql`, typed.
    pub fn rows<T: FromRow>(&self, sql: &str, params: &[Value]) -> Vec<T> {
        self.query(sql, params)
            .into_iter()
            .map(T::from_row)
            .collect()
    }

    /// The first row of `sql`, typed; panics when there is none.
    pub fn row<T: FromRow>(&self, sql: &str, params: &[Value]) -> T {
        let first = self.query(sql, params).into_iter().next();
        T::from_row(first.unwrap_or_else(|| panic!("no row: {sql}")))
    }

    /// The first column of every row of `sql`, typed.
    pub fn col<T: FromValue>(&self, sql: &str, params: &[Value]) -> Vec<T> {
        self.query(sql, params)
            .into_iter()
            .map(|mut row| cell(&mut row, 0))
            .collect()
    }

    /// The first column of the first row of `sql`; panics when there is none.
    pub fn one<T: FromValue>(&self, sql: &str, params: &[Value]) -> T {
        let mut first = self.query(sql, params).into_iter().next();
        cell(first.as_mut().unwrap_or_else(|| panic!("no row: {sql}")), 0)
    }

    /// Rows in `table`.
    pub fn count(&self, table: &str) -> i64 {
        self.one(&format!("SELECT count(*) FROM {table}"), &[])
    }

    /// Names of the tables in the schema, sorted.
    pub fn tables(&self) -> Vec<String> {
        let sql = match self {
            TestDb::Sqlite(_) => {
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            }
            TestDb::Postgres(_) => {
                "SELECT CAST(table_name AS text) FROM information_schema.tables \
                 WHERE table_schema = current_schema() ORDER BY 1"
            }
        };
        self.col(sql, &[])
    }

    /// Every cell of every table as text (blobs read as UTF-8, lossily):
    /// what a search of the stored data for a secret has to look through.
    pub fn all_text(&self) -> String {
        let mut out = String::new();
        for table in self.tables() {
            for row in self.query(&format!("SELECT * FROM {table}"), &[]) {
                for v in row {
                    match v {
                        Value::Null => {}
                        Value::Int(n) => out.push_str(&n.to_string()),
                        Value::Text(s) => out.push_str(&s),
                        Value::Blob(b) => out.push_str(&String::from_utf8_lossy(&b)),
                    }
                    out.push('\n');
                }
            }
        }
        out
    }
}

fn to_sqlite(v: &Value) -> rusqlite::types::Value {
    match v {
        Value::Null => rusqlite::types::Value::Null,
        Value::Int(n) => rusqlite::types::Value::Integer(*n),
        Value::Text(s) => rusqlite::types::Value::Text(s.clone()),
        Value::Blob(b) => rusqlite::types::Value::Blob(b.clone()),
    }
}

fn sqlite_query(conn: &rusqlite::Connection, sql: &str, params: &[Value]) -> Rows {
    use rusqlite::types::ValueRef;
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let mut found = stmt
        .query(rusqlite::params_from_iter(params.iter().map(to_sqlite)))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut rows = Vec::new();
    while let Some(row) = found.next().unwrap_or_else(|e| panic!("{sql}: {e}")) {
        let cells = (0..columns.len())
            .map(|i| match row.get_ref(i).unwrap() {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::Int(n),
                ValueRef::Text(t) => Value::Text(String::from_utf8(t.to_vec()).unwrap()),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                ValueRef::Real(f) => {
                    panic!("column {i} of `{sql}` is a float ({f}); the schema has none")
                }
            })
            .collect();
        rows.push(cells);
    }
    Rows { columns, rows }
}

#[derive(Clone, Copy)]
enum Run {
    Query,
    Execute,
}

/// `?N` placeholders as PostgreSQL's `$N` (outside quoted strings).
fn dollar_params(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        let placeholder = !quoted && c == '?' && chars.peek().is_some_and(char::is_ascii_digit);
        out.push(if placeholder { '$' } else { c });
    }
    out
}

fn is_text(ty: &Type) -> bool {
    [Type::TEXT, Type::VARCHAR, Type::NAME, Type::BPCHAR].contains(ty)
}

/// `v` as a parameter of PostgreSQL type `ty` (as the server inferred it).
fn postgres_param(v: &Value, ty: &Type) -> Box<dyn ToSql + Sync + Send> {
    match v {
        Value::Int(n) if *ty == Type::INT8 => Box::new(*n),
        Value::Int(n) if *ty == Type::INT4 => Box::new(i32::try_from(*n).unwrap()),
        Value::Int(n) if *ty == Type::INT2 => Box::new(i16::try_from(*n).unwrap()),
        Value::Text(s) if is_text(ty) => Box::new(s.clone()),
        Value::Blob(b) if *ty == Type::BYTEA => Box::new(b.clone()),
        Value::Null if *ty == Type::INT8 => Box::new(None::<i64>),
        Value::Null if is_text(ty) => Box::new(None::<String>),
        Value::Null if *ty == Type::BYTEA => Box::new(None::<Vec<u8>>),
        other => panic!("parameter {other:?} does not fit PostgreSQL type {ty}"),
    }
}

/// Cell `i` of a PostgreSQL row: the schema's types, plus the migrator's
/// timestamps as Unix ms (cast anything else in the SQL).
fn postgres_cell(row: &postgres::Row, i: usize) -> Value {
    let column = &row.columns()[i];
    let ty = column.type_();
    let int = |n: Option<i64>| n.map_or(Value::Null, Value::Int);
    if *ty == Type::INT8 {
        int(row.get::<_, Option<i64>>(i))
    } else if *ty == Type::INT4 {
        int(row.get::<_, Option<i32>>(i).map(i64::from))
    } else if *ty == Type::INT2 {
        int(row.get::<_, Option<i16>>(i).map(i64::from))
    } else if *ty == Type::BOOL {
        int(row.get::<_, Option<bool>>(i).map(i64::from))
    } else if is_text(ty) {
        row.get::<_, Option<String>>(i)
            .map_or(Value::Null, Value::Text)
    } else if *ty == Type::BYTEA {
        row.get::<_, Option<Vec<u8>>>(i)
            .map_or(Value::Null, Value::Blob)
    } else if *ty == Type::TIMESTAMPTZ || *ty == Type::TIMESTAMP {
        int(row.get::<_, Option<std::time::SystemTime>>(i).map(|t| {
            let ms = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
            i64::try_from(ms).unwrap()
        }))
    } else {
        panic!(
            "column `{}` is of PostgreSQL type {ty}; cast it to bigint, text or bytea in the SQL",
            column.name()
        )
    }
}

fn postgres_failed(sql: &str, e: postgres::Error) -> ! {
    match e.as_db_error() {
        Some(db) => panic!("{sql}: {}", db.message()),
        None => panic!("{sql}: {e}"),
    }
}

/// Runs one statement on a fresh connection to `url`: its rows (for a
/// query) or the number of rows it changed.
fn postgres_run(url: &str, sql: &str, params: &[Value], run: Run) -> (Rows, u64) {
    let sql = dollar_params(sql);
    off_runtime(|| {
        let mut client = postgres::Client::connect(url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
        let stmt = client
            .prepare(&sql)
            .unwrap_or_else(|e| postgres_failed(&sql, e));
        assert_eq!(stmt.params().len(), params.len(), "parameters of `{sql}`");
        let args: Vec<Box<dyn ToSql + Sync + Send>> = params
            .iter()
            .zip(stmt.params())
            .map(|(v, ty)| postgres_param(v, ty))
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|a| a.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let columns = stmt
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        match run {
            Run::Query => {
                let found = client
                    .query(&stmt, &refs)
                    .unwrap_or_else(|e| postgres_failed(&sql, e));
                let rows = found
                    .iter()
                    .map(|row| (0..row.len()).map(|i| postgres_cell(row, i)).collect())
                    .collect();
                (Rows { columns, rows }, 0)
            }
            Run::Execute => {
                let changed = client
                    .execute(&stmt, &refs)
                    .unwrap_or_else(|e| postgres_failed(&sql, e));
                let rows = Vec::new();
                (Rows { columns, rows }, changed)
            }
        }
    })
}

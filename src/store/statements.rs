//! The connection and the statements the writer runs at every event, prepared once and kept
//! beside it.
//!
//! rusqlite's own cache (`prepare_cached`) finds a statement by its SQL text: at each use it
//! copies the text, hashes it to take the statement out, and hashes it again to put it back.
//! For the writer's long statements (a message's upsert is about 900 bytes) that cost more
//! than running some of them. Here a statement is found by the address of its text, a literal
//! of the code, or by the slot of a filtered query's text ([`StatementKey`]), among a few
//! dozen: no text is hashed or copied. Statements not on the hot path still use
//! `prepare_cached`.

use std::cell::RefCell;

use rusqlite::{Connection, PrepFlags, Statement};

use super::Result;

/// What finds a kept statement: the address and length of a `&'static str` (two literals
/// with the same text at two addresses only make two entries), or the slot of a filtered
/// query in `Store::filters`, which lives as long as the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StatementKey {
    Literal(usize, usize),
    Filter(usize),
}

impl StatementKey {
    pub fn literal(sql: &'static str) -> StatementKey {
        StatementKey::Literal(sql.as_ptr() as usize, sql.len())
    }
}

/// The statements kept for a connection.
type Kept<'conn> = RefCell<Vec<(StatementKey, Statement<'conn>)>>;

self_cell::self_cell!(
    /// A connection and the statements kept for it (a statement borrows its connection, so
    /// the two live in one cell).
    pub(super) struct Db {
        owner: Connection,
        #[not_covariant]
        dependent: Kept,
    }
);

// SAFETY: `Db` is not `Send` by itself only because a rusqlite `Statement` holds SQLite's
// raw statement pointer. A statement belongs to its connection, and here they move between
// threads only together, as one value: `Connection` is `Send`, and rusqlite claims the same
// for the statements of its own cache (`unsafe impl Send for StatementCache`). SQLite as
// rusqlite builds it (`bundled`, SQLITE_THREADSAFE=1) lets a connection and its statements be
// used from any one thread at a time; `Db` is not `Sync` (its statements are in a `RefCell`),
// so no two threads use it at once.
unsafe impl Send for Db {}

impl Db {
    pub fn open(conn: Connection) -> Db {
        Db::new(conn, |_| RefCell::new(Vec::new()))
    }

    pub fn conn(&self) -> &Connection {
        self.borrow_owner()
    }

    /// Runs `use_it` on the kept statement `key` (prepared from `sql` the first time). The
    /// statement is taken out while in use, so a use inside another of the same statement
    /// prepares its own, which is dropped when the first is back.
    pub fn with_statement<T>(
        &self,
        key: StatementKey,
        sql: &str,
        use_it: impl FnOnce(&mut Statement<'_>) -> Result<T>,
    ) -> Result<T> {
        self.with_dependent(|conn, kept| {
            let found = {
                let mut kept = kept.borrow_mut();
                let at = kept.iter().position(|(kept_key, _)| *kept_key == key);
                at.map(|at| kept.swap_remove(at).1)
            };
            let mut statement = match found {
                Some(statement) => statement,
                // As rusqlite's cache prepares: a statement kept for long is told so, and
                // takes none of the connection's lookaside memory (prepared without the flag,
                // the kept statements used it up, and each step allocated from the heap).
                None => conn.prepare_with_flags(sql, PrepFlags::SQLITE_PREPARE_PERSISTENT)?,
            };
            let result = use_it(&mut statement);
            let mut kept = kept.borrow_mut();
            if !kept.iter().any(|(kept_key, _)| *kept_key == key) {
                kept.push((key, statement));
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_is_prepared_once_and_a_nested_use_gets_its_own() {
        let db = Db::open(Connection::open_in_memory().unwrap());
        db.conn().execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        const INSERT: &str = "INSERT INTO t (x) VALUES (?1)";
        const COUNT: &str = "SELECT count(*) FROM t WHERE x = ?1";
        let insert = StatementKey::literal(INSERT);
        let count = StatementKey::literal(COUNT);
        for x in 0..3 {
            db.with_statement(insert, INSERT, |statement| Ok(statement.execute([x])?))
                .unwrap();
        }
        let kept = |db: &Db| db.with_dependent(|_, kept| kept.borrow().len());
        assert_eq!(kept(&db), 1, "one statement kept for three uses");
        // A use of `count` inside a use of `count`: both answer, one is kept.
        let (outer, inner) = db
            .with_statement(count, COUNT, |statement| {
                let inner = db.with_statement(count, COUNT, |statement| {
                    Ok(statement.query_row([2], |row| row.get::<_, i64>(0))?)
                })?;
                Ok((statement.query_row([1], |row| row.get::<_, i64>(0))?, inner))
            })
            .unwrap();
        assert_eq!((outer, inner), (1, 1));
        assert_eq!(kept(&db), 2);
        // An error in preparing is an error, and nothing is kept.
        let bad: &'static str = "SELECT nothing FROM nowhere";
        assert!(db
            .with_statement(StatementKey::literal(bad), bad, |_| Ok(()))
            .is_err());
        assert_eq!(kept(&db), 2);
    }

    #[test]
    fn the_connection_and_its_statements_move_to_another_thread() {
        let db = Db::open(Connection::open_in_memory().unwrap());
        const ONE: &str = "SELECT 1";
        let one = |db: &Db| {
            db.with_statement(StatementKey::literal(ONE), ONE, |statement| {
                Ok(statement.query_row([], |row| row.get::<_, i64>(0))?)
            })
            .unwrap()
        };
        assert_eq!(one(&db), 1);
        let db = std::thread::spawn(move || {
            assert_eq!(one(&db), 1);
            db
        })
        .join()
        .unwrap();
        assert_eq!(one(&db), 1);
    }
}

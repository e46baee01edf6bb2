//! Every store backend through the `Store` seam, by the same cases
//! (`store/conformance.rs`): on SQLite in memory and on a private PostgreSQL started
//! for it.

use crate::store::postgres::PostgresStore;
use crate::store::sqlite::{Location, SqliteStore};

// The tests' private PostgreSQL, one file shared with the test crate (std only).
#[allow(dead_code, unreachable_pub)]
#[path = "../../../tests/src/services.rs"]
mod services;

mod on_sqlite {
    crate::store_conformance!(|| async {
        super::SqliteStore::open(&super::Location::Memory).expect("an in-memory store")
    });
}

mod on_postgres {
    crate::store_conformance!(|| async {
        let postgres = super::services::Postgres::start().expect("PostgreSQL starts");
        let url = postgres.create_database("store").expect("a database");
        let store = super::PostgresStore::connect(&url)
            .await
            .expect("the store connects");
        (store, postgres)
    });
}

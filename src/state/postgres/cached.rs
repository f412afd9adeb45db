//! Queries through each connection's statement cache. tokio-postgres runs a query given as
//! text in two round trips (parse and describe it, then bind and execute it); a statement
//! prepared once per connection and reused runs in one. A namespace operation or a quota
//! reservation in the cluster mode is a handful of statements, so this about halves what the
//! shared state adds to it (docs/BENCHMARKS.md, "The cluster mode").

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row};

/// The parameters of a statement, as tokio-postgres takes them.
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

pub async fn execute<C: GenericClient>(client: &C, sql: &str, params: Params<'_>) -> Result<u64, Error> {
    let statement = client.prepare_cached(sql).await?;
    client.execute(&statement, params).await
}

pub async fn query<C: GenericClient>(client: &C, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query(&statement, params).await
}

pub async fn query_opt<C: GenericClient>(client: &C, sql: &str, params: Params<'_>) -> Result<Option<Row>, Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query_opt(&statement, params).await
}

pub async fn query_one<C: GenericClient>(client: &C, sql: &str, params: Params<'_>) -> Result<Row, Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query_one(&statement, params).await
}

//! Connections. Two kinds, for reasons measured in NOTES.md: a shared multiplexed
//! ConnectionManager for short commands, and one dedicated connection per blocking loop whose
//! response timeout outlasts its BLOCK (the default 500 ms timeout would discard a reply that
//! already moved a job to us).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client};

use crate::error::{redact, Error, Result};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Short commands; a script over a large batch stays well inside it.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

pub fn client(url: &str) -> Result<Client> {
    let client = Client::open(url).map_err(|e| {
        Error::InvalidArgument(format!(
            "invalid Redis url {:?} ({}): expected redis://[[user]:password@]host[:port][/db]",
            redact(url),
            redact(&e.to_string())
        ))
    })?;
    Ok(client)
}

/// A self-healing multiplexed connection. While Redis is down, a command fails after one quick
/// reconnect attempt instead of waiting; the next command tries again.
pub async fn manager(client: &Client) -> Result<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    client
        .get_connection_manager_with_config(config)
        .await
        .map_err(|e| Error::from_redis(e, ""))
}

/// A connection for one blocking loop: its response timeout is the block time plus a margin.
pub async fn dedicated(client: &Client, block: Duration) -> Result<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(block + Duration::from_secs(2)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| Error::from_redis(e, ""))
}

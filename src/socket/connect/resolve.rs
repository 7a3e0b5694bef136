//! Name resolution off the loop thread.
//!
//! `getaddrinfo` blocks, so lookups run on a small shared pool of threads
//! (at most [`MAX_THREADS`], created on demand, exiting after a while
//! without work) — never one thread per connection, never the loop thread.

use std::collections::VecDeque;
use std::net::ToSocketAddrs;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use crate::error::Error;
use crate::socket::conn::Conn;
use crate::sync::lock;

const MAX_THREADS: usize = 4;
const IDLE_EXIT: Duration = Duration::from_secs(10);

struct Job {
    host: String,
    port: u16,
    conn: Arc<Conn>,
}

#[derive(Default)]
struct Pool {
    state: Mutex<PoolState>,
    work: Condvar,
}

#[derive(Default)]
struct PoolState {
    jobs: VecDeque<Job>,
    threads: usize,
    idle: usize,
}

fn pool() -> &'static Arc<Pool> {
    static POOL: OnceLock<Arc<Pool>> = OnceLock::new();
    POOL.get_or_init(Default::default)
}

/// Resolves `host:port` and hands the addresses (or the failure) to `conn`.
pub(in crate::socket) fn resolve(host: String, port: u16, conn: Arc<Conn>) {
    let pool = pool();
    let mut state = lock(&pool.state);
    state.jobs.push_back(Job { host, port, conn });
    if state.idle == 0 && state.threads < MAX_THREADS {
        let worker = pool.clone();
        let spawned = thread::Builder::new()
            .name("evstream-resolve".into())
            .spawn(move || work(&worker));
        if spawned.is_ok() {
            state.threads += 1;
        }
    }
    // With no thread at all (spawning failed), the job waits for the next
    // lookup's thread; the connect timeout bounds the wait.
    pool.work.notify_one();
}

fn work(pool: &Pool) {
    let mut state = lock(&pool.state);
    loop {
        if let Some(job) = state.jobs.pop_front() {
            drop(state);
            let result = lookup(&job.host, job.port);
            job.conn.set_resolved(result);
            state = lock(&pool.state);
            continue;
        }
        state.idle += 1;
        let (next, timeout) = pool
            .work
            .wait_timeout(state, IDLE_EXIT)
            .unwrap_or_else(|poison| poison.into_inner());
        state = next;
        state.idle -= 1;
        if timeout.timed_out() && state.jobs.is_empty() {
            state.threads -= 1;
            return;
        }
    }
}

fn lookup(host: &str, port: u16) -> Result<Vec<std::net::SocketAddr>, Error> {
    let failed = |reason: String| Error::Resolve {
        host: host.to_string(),
        reason,
    };
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|err| failed(err.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(failed("no addresses".into()));
    }
    Ok(addrs)
}

//! The core's hot paths with a 1,000-client space: a join (roster insert,
//! welcome of 1,001 entries, one event encoded for 1,000 others), a clean
//! leave, building the welcome alone, and the expiry sweep. Run with
//! `cargo bench -p longhouse-core --bench hot_paths`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use longhouse_core::{
    ClientId, ClientInfo, ConnId, Disconnect, JoinRequest, ServerMessage, Space, SpaceConfig,
    UnixMillis,
};

const CLIENTS: u64 = 1_000;
const T0: UnixMillis = UnixMillis(1_764_300_000_000);

fn id(n: u64) -> ClientId {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    bytes[8..].copy_from_slice(&(n ^ 0x5a5a_5a5a_5a5a_5a5a).to_be_bytes());
    ClientId::from_random_bytes(bytes)
}

fn request(n: u64) -> JoinRequest {
    JoinRequest::parse(
        "/bench-space",
        Some(&format!("identity=user{n}%40example.com")),
    )
    .expect("valid join")
}

/// A space holding `CLIENTS` clients, joined one millisecond apart.
fn full_space() -> Space {
    let mut space = Space::new(SpaceConfig::default());
    for n in 0..CLIENTS {
        let step = space.join(ConnId(n), &request(n), || id(n), T0.plus(n));
        black_box(step);
    }
    space
}

fn benches(c: &mut Criterion) {
    let space = full_space();
    let now = T0.plus(CLIENTS);
    let newcomer = request(CLIENTS);

    c.bench_function("join into a 1,000-client space", |b| {
        b.iter_batched(
            || space.clone(),
            |mut s| {
                let step = s.join(ConnId(CLIENTS), &newcomer, || id(CLIENTS), now);
                (s, step)
            },
            BatchSize::LargeInput,
        )
    });

    c.bench_function("clean leave from a 1,000-client space", |b| {
        b.iter_batched(
            || space.clone(),
            |mut s| {
                let step = s.closed(ConnId(500), Disconnect::Clean, now);
                (s, step)
            },
            BatchSize::LargeInput,
        )
    });

    let clients: Vec<ClientInfo> = space.roster().leases().map(|l| l.client.clone()).collect();
    c.bench_function("encode the welcome of 1,000 clients", |b| {
        b.iter(|| {
            ServerMessage::Welcome {
                id: id(0),
                clients: black_box(&clients).clone(),
            }
            .encode()
        })
    });

    c.bench_function("encode one remote join", |b| {
        b.iter(|| ServerMessage::RemoteJoin(black_box(&clients[0]).clone()).encode())
    });

    c.bench_function("sweep of a 1,000-client space, nothing due", |b| {
        b.iter_batched(
            || space.clone(),
            |mut s| {
                let step = s.tick(now);
                (s, step)
            },
            BatchSize::LargeInput,
        )
    });

    // The default TTL is 60 s: at T0 + 60,000 + 9 the first ten leases have
    // run out.
    c.bench_function("sweep of a 1,000-client space, 10 expire", |b| {
        b.iter_batched(
            || space.clone(),
            |mut s| {
                let step = s.tick(T0.plus(60_000 + 9));
                (s, step)
            },
            BatchSize::LargeInput,
        )
    });

    c.bench_function("sweep of a 1,000-client space, all expire", |b| {
        b.iter_batched(
            || space.clone(),
            |mut s| {
                let step = s.tick(T0.plus(60_000 + CLIENTS));
                (s, step)
            },
            BatchSize::LargeInput,
        )
    });

    c.bench_function("parse a join request", |b| {
        b.iter(|| {
            JoinRequest::parse(
                black_box("/bench-space"),
                Some(black_box("identity=user1%40example.com&id=abc-123")),
            )
        })
    });
}

criterion_group!(hot_paths, benches);
criterion_main!(hot_paths);

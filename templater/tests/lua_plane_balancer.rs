//! The Lua balancer through a real nginx with libnginx-mod-http-lua: exact shares across two
//! workers following one schedule, backups only when no active peer is left, retries of a dead
//! peer on another, sticky ip_hash/hash, IPv6 peers. Figures print with `--nocapture`.

mod lua_plane;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lua_plane::*;
use testkit::{free_port, IdBackend};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shares_are_exact_across_two_workers() {
    let blues = [
        IdBackend::start("blue-1").await,
        IdBackend::start("blue-2").await,
        IdBackend::start("blue-3").await,
    ];
    let green = IdBackend::start("green-1").await;
    let mut peers: Vec<_> = blues
        .iter()
        .map(|b| peer(&b.id, b.port, 30, false))
        .collect();
    peers.push(peer(&green.id, green.port, 10, false));
    let p = plane(2, Some(&doc(1, &peers))).await;

    // 2,000 requests from 4 concurrent clients, each on a new connection to the reuseport
    // listener, so both workers serve.
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let port = p.spread;
            tokio::spawn(async move {
                let mut seen: Vec<(String, String)> = Vec::new();
                for _ in 0..500 {
                    seen.push(get_with_worker(port).await);
                }
                seen
            })
        })
        .collect();
    let (mut colours, mut workers) = (BTreeMap::new(), BTreeMap::new());
    for t in tasks {
        for (body, worker) in t.await.expect("client task") {
            *colours
                .entry(body.split('-').next().unwrap_or("").to_string())
                .or_insert(0) += 1;
            *workers.entry(worker).or_insert(0) += 1;
        }
    }
    println!("shares over 2,000 requests: {colours:?}; per worker: {workers:?}");
    assert_eq!(workers.len(), 2, "both workers served: {workers:?}");
    assert!(workers.values().all(|&n| n >= 200), "{workers:?}");
    let greens = colours.get("green").copied().unwrap_or(0);
    assert!(
        (180..=220).contains(&greens),
        "green is 10 ±1%: {colours:?}"
    );

    // One schedule for all workers: sequential requests (new connections, either worker) see
    // green exactly every 10th request.
    let mut at = Vec::new();
    for i in 0..200 {
        if get_with_worker(p.spread).await.0.starts_with("green") {
            at.push(i);
        }
    }
    let gaps: Vec<_> = at.windows(2).map(|w| w[1] - w[0]).collect();
    println!("green at {at:?}");
    assert_eq!(at.len(), 20, "green positions {at:?}");
    assert!(gaps.iter().all(|&g| g == 10), "green every 10th: {at:?}");
}

#[tokio::test]
async fn backups_only_when_no_active_is_left_and_dead_actives_are_retried() {
    let (active, backup) = (
        IdBackend::start("blue-1").await,
        IdBackend::start("green-1").await,
    );
    let dead = free_port(); // nothing listens: connections are refused
    let p = plane(1, None).await;
    let (client, url) = (p.client(), p.url());

    p.push_ok(&doc(
        1,
        &[
            peer("blue-dead", dead, 1, false),
            peer(&active.id, active.port, 1, false),
            peer(&backup.id, backup.port, 1, true),
        ],
    ))
    .await;
    let counts = tally(&client, &url, 100).await;
    assert_eq!(
        counts.get("blue-1"),
        Some(&100),
        "the dead active is retried on the live one, never the backup: {counts:?}"
    );

    p.push_ok(&doc(
        2,
        &[
            peer("blue-dead", dead, 1, false),
            peer(&backup.id, backup.port, 1, true),
        ],
    ))
    .await;
    let counts = tally(&client, &url, 50).await;
    assert_eq!(
        counts.get("green-1"),
        Some(&50),
        "no active answers: the backup serves: {counts:?}"
    );

    p.push_ok(&doc(3, &[peer(&backup.id, backup.port, 1, true)]))
        .await;
    assert_eq!(
        get(&client, &url).await.as_deref(),
        Ok("green-1"),
        "only a backup: it serves"
    );
    p.push_ok(&doc(4, &[])).await;
    let answer = client.get(&url).send().await.expect("answered");
    assert_eq!(answer.status().as_u16(), 502, "no peer: 502");
    p.push_ok(&doc(5, &[peer(&active.id, active.port, 1, false)]))
        .await;
    assert_eq!(get(&client, &url).await.as_deref(), Ok("blue-1"));
    p.push_ok(r#"{"version":6,"services":{}}"#).await;
    let answer = client.get(&url).send().await.expect("answered");
    assert_eq!(
        answer.status().as_u16(),
        502,
        "a service gone from the state: 502"
    );
}

#[tokio::test]
async fn sticky_clients_keep_their_peer() {
    let backends = [
        IdBackend::start("blue-1").await,
        IdBackend::start("blue-2").await,
        IdBackend::start("blue-3").await,
    ];
    let peers: Vec<_> = backends
        .iter()
        .map(|b| peer(&b.id, b.port, 1, false))
        .collect();
    let p = plane(2, None).await;
    // 20 clients on 127.0.0.2..=21 (one /24), 5 requests each: the peer each one saw.
    let seen = |v: u64| {
        let p = &p;
        async move {
            let mut picks = BTreeMap::new();
            for last in 2..=21u8 {
                let client = p.client_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)));
                let answers: BTreeSet<_> = tally(&client, &p.url(), 5).await.into_keys().collect();
                picks.insert(last, answers);
            }
            println!("v{v}: {picks:?}");
            picks
        }
    };

    p.push_ok(&sticky_doc(1, Some("hash"), &peers)).await;
    let hashed = seen(1).await;
    assert!(
        hashed.values().all(|a| a.len() == 1),
        "hash: one peer per client: {hashed:?}"
    );
    let used: BTreeSet<_> = hashed.values().flatten().collect();
    assert!(used.len() >= 2, "hash spreads clients: {hashed:?}");
    p.push_ok(&sticky_doc(2, Some("hash"), &peers)).await;
    assert_eq!(seen(2).await, hashed, "the same peer set: the same picks");

    p.push_ok(&sticky_doc(3, Some("ip_hash"), &peers)).await;
    let by_net: BTreeSet<_> = seen(3).await.into_values().collect();
    assert_eq!(by_net.len(), 1, "ip_hash: one /24, one peer: {by_net:?}");
    assert_eq!(
        by_net.iter().next().map(BTreeSet::len),
        Some(1),
        "{by_net:?}"
    );

    p.push_ok(&sticky_doc(4, None, &peers)).await;
    let spread = tally(&p.client(), &p.url(), 30).await;
    assert_eq!(spread.len(), 3, "not sticky: round-robin: {spread:?}");
}

#[tokio::test]
async fn an_ipv6_peer_serves() {
    let v6 = IdBackend::start_on(IpAddr::V6(Ipv6Addr::LOCALHOST), "blue-6").await;
    let p = plane(1, None).await;
    p.push_ok(&doc(1, &[peer_at(&v6.id, "::1", v6.port, 1, false)]))
        .await;
    assert_eq!(get(&p.client(), &p.url()).await.as_deref(), Ok("blue-6"));
    for ((address, ok), v) in [
        ("0:0:0:0:0:0:0:1", true),
        ("fd00::4", true),
        ("::ffff:10.0.0.1", true),
        ("[::1]", false),
        ("1::2::3", false),
        ("1:2:3:4:5:6:7:8:9", false),
        ("fe80::1%eth0", false),
        ("256.0.0.1", false),
        ("10.0.0", false),
        ("010.0.0.1", false),
    ]
    .into_iter()
    .zip(2..)
    {
        let (status, body) = p
            .nginx
            .push(&doc(v, &[peer_at("x", address, 80, 1, false)]))
            .await;
        assert_eq!(status, if ok { 200 } else { 400 }, "{address}: {body}");
    }
}

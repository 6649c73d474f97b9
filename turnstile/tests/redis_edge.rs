//! `turnstile serve --edge-state redis://…` as a real child process against the real
//! Redis: a flash sale claimed over HTTP until sold out, then the Redis keys checked
//! against what the callers were told.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use common::{client, create_campaign, temp_dir, RedisNamespace, Server};
use serde_json::{json, Value};
use turnstile_edge_state::Keys;

const CAPACITY: u32 = 20;
const CLAIMS: u32 = 60;

async fn claim(client: &reqwest::Client, server: &Server, key: &str, user: &str) -> (u16, Value) {
    let response = client
        .post(server.url("/v1/campaigns/flash/claims"))
        .header("Idempotency-Key", key)
        .json(&json!({ "user_id": user }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn a_flash_sale_through_redis_leaves_redis_agreeing_with_the_answers() {
    let (_dir, data) = temp_dir();
    let namespace = RedisNamespace::new();
    let server = Server::start(&data, &namespace.serve_args());
    let client = client();
    create_campaign(
        &client,
        &server,
        "flash",
        json!({ "capacity": CAPACITY, "time_zone": "Asia/Seoul" }),
    )
    .await;

    // Everyone at once; each answer comes back to this edge through the Redis stream.
    let mut racing = tokio::task::JoinSet::new();
    for i in 0..CLAIMS {
        let client = client.clone();
        let url = server.url("");
        racing.spawn(async move {
            let response = client
                .post(format!("{url}/v1/campaigns/flash/claims"))
                .header("Idempotency-Key", format!("claim-{i}"))
                .json(&json!({ "user_id": format!("user-{i}") }))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (i, status, response.json::<Value>().await.unwrap())
        });
    }
    let mut winners = Vec::new();
    let mut decided_sold_out = 0;
    while let Some(answer) = racing.join_next().await {
        let (i, status, body) = answer.unwrap();
        match status {
            201 => winners.push((i, body)),
            409 => {
                assert_eq!(body["error"]["code"], "sold_out", "{body}");
                // Decided by a processor (outcome attached) or shed at the gate (none).
                if !body["error"]["outcome"].is_null() {
                    decided_sold_out += 1;
                }
            }
            other => panic!("claim {i}: {other} {body}"),
        }
    }
    assert_eq!(winners.len(), CAPACITY as usize);

    // After the sale: a winner retrying gets the win; a newcomer is shed.
    let (i, won) = &winners[0];
    let (status, body) = claim(
        &client,
        &server,
        &format!("claim-{i}"),
        &format!("user-{i}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(&body, won);
    let (status, body) = claim(&client, &server, "late-comer", "late").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["outcome"].is_null(),
        "shed at the edge: {body}"
    );

    // Redis agrees with what the callers were told.
    let keys = Keys::new(&namespace.name);
    let mut redis = namespace.connection();
    let campaign: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(keys.campaign("flash"))
        .query(&mut redis)
        .unwrap();
    assert_eq!(campaign["capacity"], CAPACITY.to_string(), "{campaign:?}");
    assert_eq!(campaign["issued"], CAPACITY.to_string(), "{campaign:?}");
    assert_eq!(campaign["sold_out"], "1", "{campaign:?}");
    // The creation, every winner and every claim a processor rejected; not the shed ones.
    let decided = 1 + CAPACITY + decided_sold_out;
    assert_eq!(campaign["decided"], decided.to_string(), "{campaign:?}");
    let members: u32 = redis::cmd("SCARD")
        .arg(keys.decided("flash"))
        .query(&mut redis)
        .unwrap();
    assert_eq!(members, decided);
    let partition: u32 = campaign["partition"].parse().unwrap();
    let progress: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(keys.partition(partition))
        .query(&mut redis)
        .unwrap();
    assert!(!progress.contains_key("gap"), "{progress:?}");
    assert_eq!(progress["next_offset"], decided.to_string(), "{progress:?}");
    let entries: u32 = redis::cmd("XLEN")
        .arg(keys.outcomes())
        .query(&mut redis)
        .unwrap();
    assert_eq!(entries, decided, "one stream entry per delivery");
    let cached: HashSet<String> = winners
        .iter()
        .map(|(i, _)| keys.replay("flash", &format!("claim-{i}")))
        .filter(|key| {
            redis::cmd("EXISTS")
                .arg(key)
                .query::<bool>(&mut redis)
                .unwrap()
        })
        .collect();
    assert_eq!(
        cached.len(),
        CAPACITY as usize,
        "every win is in the replay cache"
    );
}

#[tokio::test]
async fn a_restart_rebuilds_from_the_journal_the_gate_redis_lost() {
    let (_dir, data) = temp_dir();
    let namespace = RedisNamespace::new();
    let server = Server::start(&data, &namespace.serve_args());
    let client = client();
    create_campaign(
        &client,
        &server,
        "flash",
        json!({ "capacity": 2, "time_zone": "Asia/Seoul" }),
    )
    .await;
    for i in 0..2 {
        let (status, body) = claim(
            &client,
            &server,
            &format!("claim-{i}"),
            &format!("user-{i}"),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    server.kill();
    // Redis restarted empty (no persistence) while turnstile was down.
    namespace.clear();

    let server = Server::start(&data, &namespace.serve_args());
    let keys = Keys::new(&namespace.name);
    let mut redis = namespace.connection();
    let campaign: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(keys.campaign("flash"))
        .query(&mut redis)
        .unwrap();
    assert_eq!(campaign["sold_out"], "1", "{campaign:?}");
    assert_eq!(campaign["decided"], "3", "{campaign:?}");
    let members: u32 = redis::cmd("SCARD")
        .arg(keys.decided("flash"))
        .query(&mut redis)
        .unwrap();
    assert_eq!(members, 3);
    let partition: u32 = campaign["partition"].parse().unwrap();
    let progress: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(keys.partition(partition))
        .query(&mut redis)
        .unwrap();
    assert_eq!(
        progress.get("next_offset").map(String::as_str),
        Some("3"),
        "{progress:?}"
    );
    assert!(!progress.contains_key("gap"), "{progress:?}");

    let (status, body) = claim(&client, &server, "claim-0", "user-0").await;
    assert_eq!(status, 200, "a winner still sees the win: {body}");
    let (status, body) = claim(&client, &server, "newcomer", "new").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["outcome"].is_null(),
        "shed at the edge: {body}"
    );
}

//! The cost of keeping a stored token out of an answer: what the proxy does with every JSON
//! answer to a call it made with a stored token (`proxy::body::replace_all` with the token, its
//! URL-encoded form and Graph's address in both spellings, as `Worker::scrub` builds them), on a
//! page of ads like Graph's, with the token in its `paging.next` link.
//!
//! `cargo run --release -p graphwarden-server --example scrub -- [ADS] [ROUNDS]` (defaults 5000
//! ads, about 318 kB, and 200 rounds) prints the answer's size, the time per answer and MB/s.

use graphwarden_core::Stopwatch;
use graphwarden_server::proxy::body::replace_all;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let ads: usize = args.next().map_or(Ok(5000), |a| a.parse())?;
    let rounds: u32 = args.next().map_or(Ok(200), |a| a.parse())?.max(1);
    // A token of a real one's length (~200 characters).
    let token = format!("EAA{}", "Zx9Q".repeat(49));
    let mut answer = String::from("{\"data\":[");
    for i in 0..ads {
        answer.push_str(&format!(
            "{{\"id\":\"23850000{i}\",\"name\":\"Ad number {i}\",\"status\":\"ACTIVE\"}},"
        ));
    }
    answer.push_str(&format!(
        "{{}}],\"paging\":{{\"next\":\"https:\\/\\/graph.facebook.com\\/v26.0\\/act_1\\/ads?access_token={token}&after=QVFI\"}}}}"
    ));
    let encoded: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let pairs = vec![
        (token.clone().into_bytes(), b"gwk_placeholder".to_vec()),
        (encoded.into_bytes(), b"gwk_placeholder".to_vec()),
        (
            b"https://graph.facebook.com".to_vec(),
            b"http://127.0.0.1:8080".to_vec(),
        ),
        (
            b"https:\\/\\/graph.facebook.com".to_vec(),
            b"http:\\/\\/127.0.0.1:8080".to_vec(),
        ),
    ];
    let watch = Stopwatch::start();
    let mut out_len = 0;
    for _ in 0..rounds {
        out_len = replace_all(answer.as_bytes(), &pairs).map_or(0, |o| o.len());
    }
    let per = watch.elapsed() / rounds;
    println!(
        "{} bytes in, {out_len} out: {per:?} per answer, {:.0} MB/s",
        answer.len(),
        answer.len() as f64 / per.as_secs_f64() / 1e6
    );
    Ok(())
}

//! Templates learned from traffic over real APIs' path sets (`fixtures/paths/*.txt`: GitHub,
//! Stripe, Gmail, Shopify, from their public API descriptions). Each documented template is
//! called with ids of the kinds the API really uses — numbers, hex shas, prefixed ids, e-mail
//! addresses, and words (user names, repository names, coupon codes) that no shape rule knows —
//! and the learned templates must have every documented literal where the document has it,
//! and a placeholder wherever the traffic gave a position many distinct values.

use std::path::Path;

use af_snapshot::{Learned, MIN_DISTINCT};

#[derive(Clone, Debug)]
enum Seg {
    Lit(String),
    /// A parameter (`{name}`), with what follows it in the segment (`.json`).
    Param(String, String),
}

fn templates(api: &str) -> Vec<Vec<Seg>> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/paths").join(api);
    std::fs::read_to_string(&p)
        .expect("path set")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let path = l.split_once(' ').map_or(l, |(_, p)| p);
            path[1..]
                .split('/')
                .map(|s| match s.strip_prefix('{').and_then(|r| r.split_once('}')) {
                    Some((name, rest)) => Seg::Param(name.to_owned(), rest.to_owned()),
                    None => Seg::Lit(s.to_owned()),
                })
                .collect()
        })
        .collect()
}

/// Word-like ids: syllables without digits or hex-only runs, unique per `n`.
fn word(n: u64) -> String {
    const SYL: [&str; 12] =
        ["ka", "lo", "mi", "ra", "tu", "vo", "zu", "ni", "po", "su", "ro", "gi"];
    let mut out = String::new();
    let mut k = n + 12;
    while k > 0 {
        out.push_str(SYL[(k % 12) as usize]);
        k /= 12;
    }
    if n.is_multiple_of(3) {
        out.insert(2, '-');
    }
    out
}

/// A value for parameter `name` after the literal `prev`, the `n`th of its kind.
fn value(api: &str, prev: &str, name: &str, n: u64) -> String {
    let number = || format!("{}", 1_000_000 + n * 7919);
    let hex = |len: usize| {
        let mut h = String::new();
        let mut x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        while h.len() < len {
            h.push_str(&format!("{x:016x}"));
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        }
        h.truncate(len);
        h
    };
    match api {
        "github.txt" => match name {
            n if n.ends_with("_sha") => hex(40),
            "gist_id" => hex(32),
            n if n.ends_with("_number") || n.ends_with("_id") => number(),
            _ => word(n),
        },
        "stripe.txt" => {
            let prefix = match prev {
                "customers" => "cus",
                "charges" => "ch",
                "payment_intents" => "pi",
                "payment_methods" => "pm",
                "invoices" => "in",
                "subscriptions" => "sub",
                "products" => "prod",
                "prices" => "price",
                "refunds" => "re",
                "balance_transactions" => "txn",
                "events" => "evt",
                "payouts" => "po",
                "disputes" => "dp",
                "files" => "file",
                "tokens" => "tok",
                "sessions" => "cs",
                "accounts" => "acct",
                "transfers" => "tr",
                "webhook_endpoints" => "we",
                // Coupon codes are whatever the merchant typed.
                _ => return word(n).to_ascii_uppercase(),
            };
            format!("{prefix}_{}", &hex(24)[..10].replace(['a', 'e'], "Q")) + &n.to_string()
        }
        "gmail.txt" => match (prev, name) {
            (_, "userId") => format!("{}@example.com", word(n)),
            (_, "sendAsEmail") => format!("alias-{}@example.com", word(n)),
            ("labels", _) => format!("Label {}", word(n)).replace(' ', "_").to_ascii_uppercase(),
            ("filters" | "attachments", _) => format!("ANGjdJ{}", hex(20)),
            _ => hex(16),
        },
        "shopify.txt" => number(),
        other => panic!("{other}"),
    }
}

/// Calls every template `instances` times. `narrow`: a client with a small world (a few
/// owners, repositories, users: word values repeat), else fresh values each time.
fn traffic(api: &str, instances: u64, narrow: bool) -> Vec<(Vec<Seg>, String)> {
    let mut out = Vec::new();
    let mut n = 0;
    for t in templates(api) {
        for _ in 0..instances {
            let mut path = String::new();
            let mut prev = "";
            for s in &t {
                path.push('/');
                match s {
                    Seg::Lit(l) => {
                        path.push_str(l);
                        prev = l;
                    }
                    Seg::Param(name, rest) => {
                        n += 1;
                        let v = value(api, prev, name, n);
                        // A word in a narrow world is one of three; ids stay unique.
                        let v = if narrow && v.bytes().all(|c| c.is_ascii_alphabetic() || c == b'-')
                        {
                            value(api, prev, name, n % 3)
                        } else if narrow && name == "userId" {
                            "me".to_owned()
                        } else {
                            v
                        };
                        path.push_str(&v);
                        path.push_str(rest);
                    }
                }
            }
            out.push((t.clone(), path));
        }
    }
    out
}

fn learn(api: &str, calls: &[(Vec<Seg>, String)]) -> Learned {
    Learned::from_paths(calls.iter().map(|(_, p)| (api, p.as_str())))
}

/// Every documented literal stays where the document has it.
fn literals_kept(api: &str, learned: &Learned, calls: &[(Vec<Seg>, String)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (t, path) in calls {
        let got = learned.template_of(api, path);
        let segs: Vec<&str> = got[1..].split('/').collect();
        if segs.len() != t.len() {
            bad.push(format!("{path} → {got}: segment count"));
            continue;
        }
        for (s, g) in t.iter().zip(&segs) {
            if let Seg::Lit(l) = s
                && l != g
            {
                bad.push(format!("{path} → {got}: literal {l:?} became {g:?}"));
            }
        }
    }
    bad
}

fn check(api: &str) {
    // Broad: many callers' worth of distinct ids, every position past MIN_DISTINCT values.
    let broad = traffic(api, MIN_DISTINCT as u64 + 2, false);
    let learned = learn(api, &broad);
    let bad = literals_kept(api, &learned, &broad);
    assert!(bad.is_empty(), "{api} broad: {bad:#?}");
    let mut missed = Vec::new();
    for (t, path) in &broad {
        let got = learned.template_of(api, path);
        for (s, g) in t.iter().zip(got[1..].split('/')) {
            if matches!(s, Seg::Param(..)) && !g.starts_with('{') {
                missed.push(format!("{path} → {got}: {g:?} is not a parameter"));
            }
        }
    }
    assert!(missed.is_empty(), "{api} broad: {missed:#?}");
    // Narrow: a few owners, repositories and users that repeat: those read as literals (one
    // that repeats is a literal), ids still collapse, and no documented literal moves.
    let narrow = traffic(api, 4, true);
    let learned = learn(api, &narrow);
    let bad = literals_kept(api, &learned, &narrow);
    assert!(bad.is_empty(), "{api} narrow: {bad:#?}");
}

#[test]
fn github_path_set_keeps_collections_and_learns_ids_of_any_shape() {
    check("github.txt");
}

#[test]
fn stripe_path_set_keeps_collections_and_learns_ids_of_any_shape() {
    check("stripe.txt");
}

#[test]
fn gmail_path_set_keeps_collections_and_learns_ids_of_any_shape() {
    check("gmail.txt");
}

#[test]
fn shopify_path_set_keeps_collections_and_learns_ids_of_any_shape() {
    check("shopify.txt");
}

#[test]
fn gmail_me_is_a_literal_because_it_repeats() {
    let narrow = traffic("gmail.txt", 4, true);
    let learned = learn("gmail.txt", &narrow);
    let got = learned.template_of("gmail.txt", "/gmail/v1/users/me/messages/18c2f5a9e4b7d301");
    assert_eq!(got, "/gmail/v1/users/me/messages/{id}");
}

#[test]
fn a_client_of_one_repository_keeps_all_its_sub_resources() {
    // Every owner and repo the same: under `/repos/octo/app` sit ~20 different sub-resources,
    // collections and leaves, each leading somewhere of its own.
    let calls: Vec<(Vec<Seg>, String)> = traffic("github.txt", 2, false)
        .into_iter()
        .filter(|(t, _)| matches!(t.first(), Some(Seg::Lit(l)) if l == "repos"))
        .map(|(t, p)| {
            let mut segs: Vec<String> = p[1..].split('/').map(str::to_owned).collect();
            segs[1] = "octo".into();
            segs[2] = "app".into();
            (t, format!("/{}", segs.join("/")))
        })
        .collect();
    let learned = learn("github.txt", &calls);
    let bad = literals_kept("github.txt", &learned, &calls);
    assert!(bad.is_empty(), "{bad:#?}");
    assert_eq!(
        learned.template_of("github.txt", "/repos/octo/app/readme"),
        "/repos/octo/app/readme"
    );
}

#[test]
fn word_ids_that_lead_to_the_same_sub_resources_are_one_parameter() {
    let mut paths = Vec::new();
    for i in 0..30u64 {
        let item = word(i);
        for (j, sub) in ["details", "price", "stock"].iter().enumerate() {
            if !(i + j as u64).is_multiple_of(3) {
                paths.push(format!("/catalog/items/{item}/{sub}"));
            }
        }
        paths.push(format!("/catalog/items/{item}"));
    }
    let learned = Learned::from_paths(paths.iter().map(|p| ("shop.test", p.as_str())));
    assert_eq!(
        learned.template_of("shop.test", &format!("/catalog/items/{}/price", word(4))),
        "/catalog/items/{itemId}/price"
    );
    assert_eq!(
        learned.template_of("shop.test", &format!("/catalog/items/{}", word(4))),
        "/catalog/items/{id}"
    );
}

#[test]
fn parallel_readers_learn_what_one_reader_learns() {
    // `af inspect` keys paths on several threads and merges their sets: the decisions must not
    // depend on how the exchanges were split.
    for api in ["github.txt", "stripe.txt", "gmail.txt", "shopify.txt"] {
        let calls = traffic(api, MIN_DISTINCT as u64 + 2, false);
        let one = learn(api, &calls);
        let mut parts = vec![af_snapshot::PathSet::default(); 3];
        for (i, (_, p)) in calls.iter().enumerate() {
            parts[(i * 7 + i / 5) % 3].key(api, p);
        }
        let mut merged = af_snapshot::PathSet::default();
        for p in parts {
            merged.merge(p);
        }
        assert_eq!(merged.learn(), one, "{api}");
    }
}

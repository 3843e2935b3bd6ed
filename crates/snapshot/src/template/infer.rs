//! Path templates learned from the capture itself: a segment position (under the same prefix,
//! on the same host) that takes many distinct values is a parameter, whatever their shape; one
//! that repeats is a literal. No API-specific list.
//!
//! Two stages, so that a parallel reader can key its counts before anything is known:
//! - [`PathSet::key`] gives every path a *provisional key*: segments whose shape alone says
//!   "id" become a marker (`{}`, `{@}` for e-mail), and positions that already took more than
//!   [`OVERFLOW`] distinct values become `{*}` (this bounds memory on captures with millions of
//!   distinct ids of no known shape). Rows are counted per provisional key.
//! - [`PathSet::learn`] decides, top-down over the trie of keys, which positions are
//!   parameters ([`Learned`]); every provisional key then maps to one final template.
//!
//! Beside id-shaped values, a value with a digit in it is an id too. The decision for the other
//! word values at one position, in order:
//! 1. at least [`OVERFLOW`] of them, or a `{*}` there: a parameter;
//! 2. first segment of the path, or fewer than [`MIN_DISTINCT`]: literals;
//! 3. the same values recur under several values of the parameter before them (`issues`
//!    under every `{repo}`): literals — a vocabulary;
//! 4. a quarter of them or more are followed by a parameter (`customers/cus_…`,
//!    `issues/{number}`, or many values that follow no other of them): literals — a
//!    resource's collections, beside which its leaves (`readme`) are literals too;
//! 5. those of them that lead further mostly lead to segments no other value leads to
//!    (`actions/runs`, `git/trees`, `releases/latest`): literals — each is a resource of its
//!    own, where instances of one parameter lead to the same things (`users/X/repos`);
//! 6. otherwise: a parameter.
//!
//! The thresholds are argued in `docs/design/0007-templates.md`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use super::shape::{self, Shape};

/// Marker of an id-shaped segment in a provisional key.
pub(crate) const ID: &str = "{}";
/// Marker of an e-mail address.
pub(crate) const EMAIL: &str = "{@}";
/// Marker of a position that took at least [`OVERFLOW`] distinct values.
pub(crate) const MANY: &str = "{*}";

/// Fewest distinct word values at one position that make it a parameter (rules 2–5).
pub const MIN_DISTINCT: usize = 10;
/// Distinct values at one position beyond any literal vocabulary: a parameter, always.
pub const OVERFLOW: usize = 1000;
/// Distinct provisional keys on a host before positions past [`OVERFLOW`] are collapsed.
const COMPACT_AT: usize = 16_384;

/// `{userId}`, `{}`, `{*}`: a placeholder or a marker, not a literal segment.
pub(crate) fn is_marker(seg: &str) -> bool {
    seg.len() >= 2 && seg.starts_with('{') && seg.ends_with('}')
}

/// The path with id-shaped segments replaced by markers (borrowed when there are none).
pub fn provisional(path: &str) -> Cow<'_, str> {
    let Some(rest) = path.strip_prefix('/') else { return Cow::Borrowed(path) };
    if !rest.split('/').any(|s| shape::classify(s).is_some()) {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    for s in rest.split('/') {
        out.push('/');
        out.push_str(match shape::classify(s) {
            Some(Shape::Email) => EMAIL,
            Some(Shape::Id) => ID,
            None => s,
        });
    }
    Cow::Owned(out)
}

/// The paths of one host: provisional key → calls, and the positions collapsed so far.
#[derive(Clone, Debug, Default)]
struct HostPaths {
    paths: HashMap<String, u64>,
    /// Provisional prefixes (segments) whose next position took ≥ [`OVERFLOW`] values.
    many: Vec<Vec<String>>,
    compact_at: usize,
}

impl HostPaths {
    /// `key` with every collapsed position replaced by `{*}`.
    fn collapse<'a>(&self, key: Cow<'a, str>) -> Cow<'a, str> {
        if self.many.is_empty() || !key.starts_with('/') {
            return key;
        }
        let mut segs: Vec<&str> = key[1..].split('/').collect();
        let mut changed = false;
        for prefix in &self.many {
            if segs.len() > prefix.len()
                && segs.iter().zip(prefix).all(|(a, b)| a == b)
                && segs[prefix.len()] != MANY
            {
                segs[prefix.len()] = MANY;
                changed = true;
            }
        }
        if !changed {
            return key;
        }
        Cow::Owned(segs.iter().fold(String::new(), |mut s, seg| {
            s.push('/');
            s.push_str(seg);
            s
        }))
    }

    fn count(&mut self, key: &str, n: u64) {
        match self.paths.get_mut(key) {
            Some(c) => *c += n,
            None => {
                self.paths.insert(key.to_owned(), n);
            }
        }
    }

    /// Finds positions past [`OVERFLOW`] values and re-keys the paths through them.
    fn compact(&mut self) {
        let trie = Trie::of(self.paths.iter().map(|(k, v)| (k.as_str(), *v)));
        let mut found = Vec::new();
        trie.overflowing(&mut Vec::new(), &mut found);
        for f in found {
            if !self.many.contains(&f) {
                self.many.push(f);
            }
        }
        let old = std::mem::take(&mut self.paths);
        for (k, v) in old {
            let c = self.collapse(Cow::Owned(k)).into_owned();
            self.count(&c, v);
        }
        self.compact_at = (self.paths.len() * 2).max(COMPACT_AT);
    }
}

/// The distinct paths of a capture per host, with call counts: the input of [`PathSet::learn`].
/// One per reader thread; merge them.
#[derive(Clone, Debug, Default)]
pub struct PathSet {
    hosts: HashMap<String, HostPaths>,
}

impl PathSet {
    /// Counts one call of `path` on `host` and returns its provisional key (see the module).
    pub fn key<'a>(&mut self, host: &str, path: &'a str) -> Cow<'a, str> {
        let hp = match self.hosts.get_mut(host) {
            Some(h) => h,
            None => self.hosts.entry(host.to_owned()).or_default(),
        };
        let key = hp.collapse(provisional(path));
        hp.count(&key, 1);
        if hp.paths.len() >= hp.compact_at.max(COMPACT_AT) {
            hp.compact();
        }
        key
    }

    /// Adds another set's paths (another reader thread's, or another capture's).
    pub fn merge(&mut self, other: PathSet) {
        for (host, o) in other.hosts {
            let hp = self.hosts.entry(host).or_default();
            for m in o.many {
                if !hp.many.contains(&m) {
                    hp.many.push(m);
                }
            }
            for (k, v) in o.paths {
                let k = hp.collapse(Cow::Owned(k)).into_owned();
                hp.count(&k, v);
            }
            if hp.paths.len() >= hp.compact_at.max(COMPACT_AT) {
                hp.compact();
            }
        }
    }

    /// True when no path was counted.
    pub fn is_empty(&self) -> bool {
        self.hosts.values().all(|h| h.paths.is_empty())
    }

    /// The templates of every host.
    pub fn learn(&self) -> Learned {
        let mut hosts = BTreeMap::new();
        for (host, hp) in &self.hosts {
            let trie = Trie::of(hp.paths.iter().map(|(k, v)| (k.as_str(), *v)));
            hosts.insert(host.clone(), decide(&[&trie], 0));
        }
        Learned { hosts }
    }
}

/// The trie of provisional keys: segment → child, and calls ending here.
#[derive(Debug, Default)]
struct Trie {
    end: u64,
    kids: BTreeMap<String, Trie>,
}

impl Trie {
    fn of<'a>(paths: impl Iterator<Item = (&'a str, u64)>) -> Self {
        let mut root = Trie::default();
        for (p, n) in paths {
            let Some(rest) = p.strip_prefix('/') else { continue };
            let mut node = &mut root;
            for seg in rest.split('/') {
                node = node.kids.entry(seg.to_owned()).or_default();
            }
            node.end += n;
        }
        root
    }

    /// Prefixes whose next position holds at least [`OVERFLOW`] word values.
    fn overflowing(&self, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if self.kids.keys().filter(|k| !is_marker(k)).count() >= OVERFLOW {
            out.push(prefix.clone());
        }
        for (k, kid) in &self.kids {
            prefix.push(k.clone());
            kid.overflowing(prefix, out);
            prefix.pop();
        }
    }
}

/// A decided position: its literal children and its parameter child.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Node {
    lits: HashMap<String, Node>,
    param: Option<Box<Param>>,
}

/// A parameter position and what follows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Param {
    /// Every value seen was an e-mail address (`{email}`).
    email: bool,
    next: Node,
}

/// Whether the word values at one position (value → the trie nodes it leads to, one per
/// instance of the position) make it a parameter. See the module for the rules.
fn words_are_param(words: &BTreeMap<&str, Vec<&Trie>>, instances: usize, depth: usize) -> bool {
    let k = words.len();
    if k >= OVERFLOW {
        return true;
    }
    if depth == 0 || k < MIN_DISTINCT {
        return false;
    }
    let recurring = words.values().filter(|g| g.len() >= 2).count();
    if instances >= 2 && recurring * 2 >= k {
        return false;
    }
    // How many of the values each next literal segment follows: a segment that follows
    // several (`languages` after every repo) says they are instances of one thing; many
    // segments that follow only one (each collection's own ids) say it is a collection name.
    fn below<'t>(g: &[&'t Trie], depth: usize) -> Vec<&'t str> {
        let mut level: Vec<&'t Trie> = g.to_vec();
        for _ in 1..depth {
            level = level.iter().flat_map(|n| n.kids.values()).collect();
        }
        let mut words: Vec<&'t str> = level
            .iter()
            .flat_map(|n| n.kids.keys())
            .map(String::as_str)
            .filter(|s| !is_marker(s))
            .collect();
        words.sort_unstable();
        words.dedup();
        words
    }
    fn follows<'t>(sets: &[Vec<&'t str>]) -> HashMap<&'t str, usize> {
        let mut n: HashMap<&'t str, usize> = HashMap::new();
        for set in sets {
            for w in set {
                *n.entry(*w).or_default() += 1;
            }
        }
        n
    }
    let (near, far): (Vec<Vec<&str>>, Vec<Vec<&str>>) =
        words.values().map(|g| (below(g, 1), below(g, 2))).unzip();
    let (follows1, follows2) = (follows(&near), follows(&far));
    let collections = words
        .values()
        .zip(&near)
        .filter(|(g, near)| {
            let ids_after = g.iter().any(|n| n.kids.keys().any(|c| is_marker(c)));
            let own = near.iter().filter(|w| follows1.get(*w) == Some(&1)).count();
            ids_after || own >= MIN_DISTINCT
        })
        .count();
    // A quarter is plenty: ids are almost never followed directly by other ids, while a
    // resource's sub-resources mix collections with leaves (`issues/{n}` beside `readme`).
    if collections * 4 >= k {
        return false;
    }
    // Instances of one thing lead to the same things (`/users/X/repos` for every X, or one
    // level further, `/repos/OWNER/NAME/issues` for every owner); a vocabulary's values each
    // lead somewhere of their own (`actions/runs`, `git/trees`, `releases/latest`).
    let leading: Vec<bool> = near
        .iter()
        .zip(&far)
        .filter(|(a, b)| !a.is_empty() || !b.is_empty())
        .map(|(a, b)| a.iter().any(|w| follows1[w] >= 2) || b.iter().any(|w| follows2[w] >= 2))
        .collect();
    let shared = leading.iter().filter(|s| **s).count();
    leading.len() < 2 || shared * 2 >= leading.len()
}

/// Decides the position below `group` (the trie nodes that one position of the template has
/// merged, e.g. every `/users/X` once `X` is a parameter).
fn decide(group: &[&Trie], depth: usize) -> Node {
    let mut words: BTreeMap<&str, Vec<&Trie>> = BTreeMap::new();
    let mut markers: BTreeMap<&str, Vec<&Trie>> = BTreeMap::new();
    for n in group {
        for (v, kid) in &n.kids {
            let to = if is_marker(v) { &mut markers } else { &mut words };
            to.entry(v.as_str()).or_default().push(kid);
        }
    }
    // Beside ids of a known shape, a value with a digit in it is one more id of a shape too
    // short to be sure of (`amber-birch-1x3` beside `juniper-juniper-1x9`); words without one
    // stay words (`batchModify` beside message ids).
    if markers.keys().any(|m| *m != MANY) {
        let ids: Vec<&str> =
            words.keys().copied().filter(|w| w.bytes().any(|c| c.is_ascii_digit())).collect();
        for w in ids {
            if let Some(g) = words.remove(w) {
                markers.entry(ID).or_default().extend(g);
            }
        }
    }
    let param_words = markers.contains_key(MANY) || words_are_param(&words, group.len(), depth);
    let mut node = Node::default();
    let email = !markers.is_empty() && markers.keys().all(|m| *m == EMAIL);
    let mut pgroup: Vec<&Trie> = markers.values().flatten().copied().collect();
    if param_words {
        pgroup.extend(words.values().flatten().copied());
    } else {
        for (w, g) in &words {
            node.lits.insert((*w).to_owned(), decide(g, depth + 1));
        }
    }
    if !pgroup.is_empty() {
        let email = email && (!param_words || words.is_empty());
        node.param = Some(Box::new(Param { email, next: decide(&pgroup, depth + 1) }));
    }
    node
}

/// What [`PathSet::learn`] decided: per host, the literal and parameter positions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Learned {
    hosts: BTreeMap<String, Node>,
}

/// A walk of one path through a host's decisions.
struct Walk {
    template: String,
    /// Literal segments matched.
    literals: usize,
    /// Every segment was decided (none fell back to the shape heuristic).
    complete: bool,
}

fn walk(root: &Node, path: &str) -> Walk {
    let segs: Vec<&str> = path[1..].split('/').collect();
    let mut out = String::with_capacity(path.len() + 8);
    let mut node = Some(root);
    let mut prev: Option<&str> = None;
    let mut literals = 0;
    let mut complete = true;
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        out.push('/');
        let here = node.take();
        if let Some(n) = here.and_then(|n| (!is_marker(seg)).then(|| n.lits.get(*seg)).flatten()) {
            out.push_str(seg);
            prev = Some(seg);
            literals += 1;
            node = Some(n);
        } else if let Some(p) = here.and_then(|n| n.param.as_deref()) {
            out.push_str(&shape::param_name(prev, last, p.email));
            prev = None;
            node = Some(&p.next);
        } else {
            // Not seen while learning: the shape of the segment decides.
            complete = false;
            match (shape::classify(seg), is_marker(seg)) {
                (Some(s), _) => {
                    out.push_str(&shape::param_name(prev, last, s == Shape::Email));
                    prev = None;
                }
                (None, true) if *seg == EMAIL => {
                    out.push_str(&shape::param_name(prev, last, true));
                    prev = None;
                }
                (None, true) => {
                    out.push_str(&shape::param_name(prev, last, false));
                    prev = None;
                }
                (None, false) => {
                    out.push_str(seg);
                    prev = Some(seg);
                }
            }
        }
    }
    Walk { template: out, literals, complete }
}

impl Learned {
    /// Learns from `(host, path)` pairs.
    pub fn from_paths<'a>(paths: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut set = PathSet::default();
        for (h, p) in paths {
            set.key(h, p);
        }
        set.learn()
    }

    /// True when nothing was learned.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The template of `path` on `host` by these decisions alone (the segments' shapes where
    /// they say nothing).
    pub fn template_of(&self, host: &str, path: &str) -> String {
        self.on_host(host, path)
            .or_else(|| self.any_host(path))
            .unwrap_or_else(|| by_shape(path).into_owned())
    }

    /// The template of `path` on `host`, when the host was seen while learning.
    pub(crate) fn on_host(&self, host: &str, path: &str) -> Option<String> {
        if !path.starts_with('/') {
            return None;
        }
        self.hosts.get(host).map(|root| walk(root, path).template)
    }

    /// The template of `path` on whichever host's decisions cover it best: a complete walk with
    /// the most literal segments (a journal's host is the mock's own address, not the
    /// capture's).
    pub(crate) fn any_host(&self, path: &str) -> Option<String> {
        if !path.starts_with('/') {
            return None;
        }
        self.hosts
            .values()
            .map(|root| walk(root, path))
            .filter(|w| w.complete)
            .max_by_key(|w| w.literals)
            .map(|w| w.template)
    }
}

/// The shape heuristic alone, for paths nothing was learned about.
pub(crate) fn by_shape(path: &str) -> Cow<'_, str> {
    if !path.starts_with('/') {
        return Cow::Borrowed(path);
    }
    let w = walk(&Node::default(), path);
    if w.template == path { Cow::Borrowed(path) } else { Cow::Owned(w.template) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learn(host: &str, paths: &[String]) -> Learned {
        Learned::from_paths(paths.iter().map(|p| (host, p.as_str())))
    }

    #[test]
    fn many_values_of_any_shape_are_a_parameter_and_few_stay_literal() {
        let skus: Vec<String> = (0..160).map(|i| format!("/v1/stock/widget{i}")).collect();
        let l = learn("shop.test", &skus);
        assert_eq!(l.on_host("shop.test", "/v1/stock/widget3").as_deref(), Some("/v1/stock/{id}"));
        let few: Vec<String> =
            ["health", "status", "metrics"].iter().map(|s| format!("/v1/{s}")).collect();
        let l = learn("svc.test", &few);
        assert_eq!(l.on_host("svc.test", "/v1/health").as_deref(), Some("/v1/health"));
    }

    #[test]
    fn a_vocabulary_under_a_parameter_stays_literal() {
        // Every repo has the same sub-resources: they recur under each `{repo}`.
        let mut paths = Vec::new();
        for r in 0..12 {
            for sub in [
                "issues",
                "pulls",
                "languages",
                "topics",
                "tags",
                "forks",
                "contributors",
                "releases",
                "branches",
                "readme",
                "stargazers",
                "subscribers",
            ] {
                paths.push(format!("/repos/octo/repo{r}/{sub}"));
            }
        }
        let l = learn("api.github.com", &paths);
        assert_eq!(
            l.on_host("api.github.com", "/repos/octo/repo3/languages").as_deref(),
            Some("/repos/octo/{octoId}/languages")
        );
    }

    #[test]
    fn collection_names_followed_by_ids_stay_literal() {
        let mut paths = Vec::new();
        for (coll, prefix) in [
            ("customers", "cus"),
            ("charges", "ch"),
            ("invoices", "in"),
            ("refunds", "re"),
            ("payouts", "po"),
            ("products", "prod"),
            ("prices", "price"),
            ("coupons", "co"),
            ("disputes", "dp"),
            ("events", "evt"),
            ("files", "file"),
            ("plans", "plan"),
        ] {
            for i in 0..3 {
                paths.push(format!("/v1/{coll}/{prefix}_{i}Ab9Cd{i}"));
            }
        }
        let l = learn("api.stripe.com", &paths);
        assert_eq!(
            l.on_host("api.stripe.com", "/v1/charges/ch_1Ab9Cd1").as_deref(),
            Some("/v1/charges/{id}")
        );
    }

    #[test]
    fn overflowing_positions_collapse_while_reading_and_learn_the_same() {
        let mut set = PathSet::default();
        for i in 0..(COMPACT_AT + 10) {
            set.key("h", &format!("/names/n{i}x"));
        }
        assert!(set.hosts["h"].paths.len() < 20, "collapsed while reading");
        assert_eq!(set.key("h", "/names/later"), "/names/{*}");
        let l = set.learn();
        assert_eq!(l.on_host("h", "/names/zzz").as_deref(), Some("/names/{id}"));
        // Split over two readers, merged: the same decision.
        let (mut a, mut b) = (PathSet::default(), PathSet::default());
        for i in 0..(OVERFLOW + 500) {
            let s = if i % 2 == 0 { &mut a } else { &mut b };
            s.key("h", &format!("/names/n{i}x"));
        }
        a.merge(b);
        assert_eq!(a.learn().on_host("h", "/names/n3x").as_deref(), Some("/names/{id}"));
    }

    #[test]
    fn values_with_digits_beside_ids_are_ids_and_words_stay() {
        let mut paths: Vec<String> =
            (0..3).map(|i| format!("/v1/items/juniper-juniper-1x{i}9")).collect();
        paths.extend((0..3).map(|i| format!("/v1/items/amber-birch-1x{i}")));
        paths.push("/v1/items/search".into());
        let l = learn("h", &paths);
        assert_eq!(l.on_host("h", "/v1/items/amber-birch-1x2").as_deref(), Some("/v1/items/{id}"));
        assert_eq!(l.on_host("h", "/v1/items/search").as_deref(), Some("/v1/items/search"));
    }

    #[test]
    fn provisional_keys_and_unseen_paths_fall_back_to_shape() {
        assert_eq!(provisional("/users/42/messages/18c2f5a9e4b7d301"), "/users/{}/messages/{}");
        assert_eq!(provisional("/people/ann@example.com"), "/people/{@}");
        assert!(matches!(provisional("/v1/health"), Cow::Borrowed(_)));
        assert_eq!(by_shape("/users/42/orders/9001"), "/users/{userId}/orders/{id}");
        assert_eq!(by_shape("/people/ann@example.com/mail"), "/people/{email}/mail");
    }
}

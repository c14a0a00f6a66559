//! The demo's web analytics sessions: how people arrive at the webshop (campaign parameters,
//! device), the touchpoints attribution credits.
//!
//! The process, stated so its results can be read against it:
//! - A person's cookies are their devices: with two, the first is a phone and the second a
//!   desktop; with one, either.
//! - Before an order of the last 400 days, 85% of online and app orders and 30% of store orders
//!   had tracked visits: 1 to 5 sessions (weights 30/30/20/12/8) in the 28 days before it. The
//!   first touch is mostly prospecting (social, display, paid search, organic), later ones
//!   e-mail, search and retargeting, and the last one (the only one of a single-visit journey) — on the phone for an app order, on the
//!   desktop for an online one, logged in (`customer_id`) because buying needs an account —
//!   mostly direct, e-mail or paid search. Earlier sessions of a two-device person are on the
//!   phone 70% of the time and anonymous: they join the order only through the identity graph,
//!   once that phone's cookie is known (a logged-in app order, or a login in `web_events`).
//! - Besides, every cookie has 0–2 browsing sessions in the last year that lead nowhere, mostly
//!   from display and social ads: the channels that open many journeys and close few.
//!
//! Drawn from a random stream of its own per person, so every other file of a seed is what it
//! was before sessions existed.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{AS_OF_DAYS, DAY_US};

/// Campaign parameters of one channel: (utm_source, utm_medium, campaigns).
struct Channel {
    sources: &'static [&'static str],
    medium: Option<&'static str>,
    campaigns: &'static [&'static str],
}

const PAID_SEARCH: Channel = Channel {
    sources: &["google", "google", "bing"],
    medium: Some("cpc"),
    campaigns: &["brand_search", "generic_search"],
};
const SOCIAL: Channel = Channel {
    sources: &["facebook", "instagram", "tiktok"],
    medium: Some("paid_social"),
    campaigns: &["autumn_sale", "new_collection"],
};
const DISPLAY: Channel = Channel {
    sources: &["criteo", "gdn"],
    medium: Some("display"),
    campaigns: &["retargeting", "prospecting"],
};
const EMAIL: Channel = Channel {
    sources: &["newsletter"],
    medium: Some("email"),
    campaigns: &["weekly_newsletter", "cart_reminder"],
};
const AFFILIATE: Channel = Channel {
    sources: &["awin", "cashbackclub"],
    medium: Some("affiliate"),
    campaigns: &["vouchers"],
};
const ORGANIC: Channel = Channel {
    sources: &["google", "bing", "duckduckgo"],
    medium: Some("organic"),
    campaigns: &[],
};
const DIRECT: Channel = Channel {
    sources: &[],
    medium: None,
    campaigns: &[],
};

/// (weight, channel) of a journey's first touch, the ones in between, its last, and of
/// browsing that leads nowhere.
const FIRST: &[(u32, &Channel)] = &[
    (28, &SOCIAL),
    (18, &DISPLAY),
    (24, &PAID_SEARCH),
    (18, &ORGANIC),
    (6, &AFFILIATE),
    (6, &EMAIL),
];
const MIDDLE: &[(u32, &Channel)] = &[
    (30, &EMAIL),
    (20, &PAID_SEARCH),
    (15, &DISPLAY),
    (10, &SOCIAL),
    (10, &ORGANIC),
    (15, &DIRECT),
];
const LAST: &[(u32, &Channel)] = &[
    (30, &DIRECT),
    (25, &EMAIL),
    (25, &PAID_SEARCH),
    (10, &ORGANIC),
    (10, &AFFILIATE),
];
const BROWSING: &[(u32, &Channel)] = &[
    (35, &DISPLAY),
    (30, &SOCIAL),
    (15, &ORGANIC),
    (10, &PAID_SEARCH),
    (10, &AFFILIATE),
];

fn weighted<'a>(rng: &mut SmallRng, items: &[(u32, &'a Channel)]) -> &'a Channel {
    let total: u32 = items.iter().map(|(w, _)| w).sum();
    let mut r = rng.random_range(0..total);
    for (w, c) in items {
        if r < *w {
            return c;
        }
        r -= w;
    }
    items[items.len() - 1].1
}

/// One row of `web_sessions`.
pub struct Session {
    pub cookie: String,
    pub device: &'static str,
    pub ts: i64,
    pub utm_source: Option<&'static str>,
    pub utm_medium: Option<&'static str>,
    pub utm_campaign: Option<&'static str>,
    /// The webshop account logged in during the session.
    pub customer_id: Option<String>,
}

/// An order as its journey needs it: when (µs), its channel (`online`, `app`, `store`) and
/// the webshop account it was placed with.
pub struct Order {
    pub ts: i64,
    pub channel: &'static str,
    pub account: String,
}

fn session(
    rng: &mut SmallRng,
    cookie: &(String, &'static str),
    ts: i64,
    c: &Channel,
    customer_id: Option<String>,
) -> Session {
    let pick = |rng: &mut SmallRng, xs: &[&'static str]| {
        (!xs.is_empty()).then(|| xs[rng.random_range(0..xs.len())])
    };
    Session {
        cookie: cookie.0.clone(),
        device: cookie.1,
        ts,
        utm_source: pick(rng, c.sources),
        utm_medium: c.medium,
        utm_campaign: pick(rng, c.campaigns),
        customer_id,
    }
}

/// The sessions of one person (module docs), in no particular order.
pub fn sessions_of(seed: u64, person: u64, cookies: &[String], orders: &[Order]) -> Vec<Session> {
    let mut out = Vec::new();
    if cookies.is_empty() {
        return out;
    }
    let mut rng = SmallRng::seed_from_u64(seed ^ person.wrapping_mul(0xD1B5_4A32_D192_ED03));
    let devices: Vec<(String, &'static str)> = match cookies {
        [one] => vec![(
            one.clone(),
            if rng.random_bool(0.6) {
                "mobile"
            } else {
                "desktop"
            },
        )],
        [phone, desktop, ..] => vec![(phone.clone(), "mobile"), (desktop.clone(), "desktop")],
        [] => unreachable!(),
    };
    let now = AS_OF_DAYS as i64 * DAY_US;
    let phone = devices
        .iter()
        .find(|d| d.1 == "mobile")
        .unwrap_or(&devices[0]);
    let desktop = devices
        .iter()
        .find(|d| d.1 == "desktop")
        .unwrap_or(&devices[0]);
    for o in orders.iter().filter(|o| now - o.ts <= 400 * DAY_US) {
        let tracked = if o.channel == "store" { 30 } else { 85 };
        if !rng.random_ratio(tracked, 100) {
            continue;
        }
        let k = match rng.random_range(0..100) {
            0..=29 => 1,
            30..=59 => 2,
            60..=79 => 3,
            80..=91 => 4,
            _ => 5,
        };
        // Earlier touches in the 28 days before the order, in time order; the last within an
        // hour of it.
        let mut times: Vec<i64> = (1..k)
            .map(|_| o.ts - rng.random_range(DAY_US / 24..28 * DAY_US))
            .collect();
        times.sort_unstable();
        for (n, ts) in times.iter().enumerate() {
            let c = weighted(&mut rng, if n == 0 { FIRST } else { MIDDLE });
            let on = if rng.random_ratio(70, 100) {
                phone
            } else {
                desktop
            };
            out.push(session(&mut rng, on, *ts, c, None));
        }
        let c = weighted(&mut rng, LAST);
        let (on, account) = match o.channel {
            "app" => (phone, Some(o.account.clone())),
            "online" => (desktop, Some(o.account.clone())),
            _ => (phone, None),
        };
        let ts = o.ts - rng.random_range(60_000_000..3_600_000_000);
        out.push(session(&mut rng, on, ts, c, account));
    }
    for d in &devices {
        for _ in 0..rng.random_range(0..=2) {
            let ts = now - rng.random_range(0..365 * DAY_US);
            let c = weighted(&mut rng, BROWSING);
            out.push(session(&mut rng, d, ts, c, None));
        }
    }
    out
}

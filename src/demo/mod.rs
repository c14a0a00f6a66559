//! `panorama demo`: a retail company's scattered customer data, generated.
//!
//! The same people appear in a CRM export (CSV), a webshop (Parquet customers and orders), a
//! loyalty programme (CSV with `;`, optionally PostgreSQL), web/app events (Parquet, with
//! anonymous cookies that sometimes log in) and web analytics sessions with the campaign that
//! brought each visit (Parquet; see [`sessions`] for the marketing journeys before orders).
//! Each source garbles them its own way: locales with diacritics, typos, nicknames,
//! "LAST, First", phone formats, stale and missing values,
//! duplicates within a source, and households sharing a surname, address and landline.
//! `truth.csv` maps every record to the person behind it, for scoring unification.
//!
//! Output is deterministic for a given `--persons` and `--seed`.

pub mod locales;
mod noise;
mod sessions;
mod writers;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use locales::{Locale, COMPANY_SUFFIXES, COMPANY_WORDS, LOCALES, PRODUCTS};
use noise::*;
use writers::{CsvOut, ParquetOut, PqType};

/// What to generate.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub persons: usize,
    pub out: PathBuf,
    pub seed: u64,
    /// Load loyalty members into this PostgreSQL database and point the config at it.
    pub postgres: Option<String>,
    pub quiet: bool,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub out: PathBuf,
    pub persons: usize,
    pub files: Vec<(String, u64)>,
    pub seconds: f64,
}

impl DemoReport {
    pub fn summary(&self) -> String {
        let mut s = format!(
            "Demo project for {} people written to {} in {:.1}s:\n",
            self.persons,
            self.out.display(),
            self.seconds
        );
        for (f, n) in &self.files {
            s.push_str(&format!("  {f:<36} {n:>12} rows\n"));
        }
        s
    }
}

/// Fixed "today" of the demo world, so a seed always gives the same files (2026-10-31 UTC).
const AS_OF_DAYS: i32 = 20_757;
const DAY_US: i64 = 86_400_000_000;

/// Product categories of the demo catalogue (products are numbered category by category).
const CATEGORIES: usize = 10;

fn ts_days_ago(rng: &mut SmallRng, max_days: i32) -> i64 {
    let days = rng.random_range(0..max_days.max(1)) as i64;
    let secs = rng.random_range(0..86_400i64);
    (AS_OF_DAYS as i64 - days) * DAY_US + secs * 1_000_000
}

struct Address {
    street: String,
    postcode: String,
    city: &'static str,
}

impl Address {
    fn random(rng: &mut SmallRng, l: &Locale) -> Self {
        let (city, prefix) = *pick(rng, l.cities);
        let street = *pick(rng, l.streets);
        let number = rng.random_range(1..220);
        let street = if l.number_after_street {
            format!("{street} {number}")
        } else {
            format!("{number} {street}")
        };
        let mut postcode = digits(rng, prefix, l.postcode_digits);
        if l.postcode_letters {
            postcode.push(' ');
            if l.country == "GB" {
                postcode.push((b'1' + rng.random_range(0..9u8)) as char);
            }
            for _ in 0..2 {
                postcode.push((b'A' + rng.random_range(0..26u8)) as char);
            }
        }
        Address {
            street,
            postcode,
            city,
        }
    }
}

struct Person {
    id: u64,
    locale: &'static Locale,
    gender: &'static str,
    first: &'static str,
    last: String,
    birth_days: i32,
    email: Option<String>,
    old_email: Option<String>,
    mobile: Option<String>,
    landline: Option<String>,
    address: Address,
    old_address: Option<Address>,
    company: Option<String>,
}

fn email_for(rng: &mut SmallRng, l: &Locale, first: &str, last: &str) -> String {
    let f = ascii_fold(first).to_lowercase().replace(' ', "");
    let la = ascii_fold(last).to_lowercase().replace([' ', '\''], "");
    let domain = pick(rng, l.email_domains);
    match rng.random_range(0..5) {
        0 => format!("{f}.{la}@{domain}"),
        1 => format!("{}{la}@{domain}", &f[..1.min(f.len())]),
        2 => format!("{f}{}@{domain}", rng.random_range(1..99)),
        3 => format!("{f}_{la}{}@{domain}", rng.random_range(60..99)),
        _ => format!("{la}.{f}@{domain}"),
    }
}

/// An address nobody else has yet; real mailboxes are personal (households aside).
fn unique_email(
    rng: &mut SmallRng,
    used: &mut HashSet<String>,
    l: &Locale,
    first: &str,
    last: &str,
) -> String {
    let email = email_for(rng, l, first, last);
    if used.insert(email.clone()) {
        return email;
    }
    let (local, domain) = email.split_once('@').unwrap_or((&email, "example.com"));
    loop {
        let candidate = format!("{local}{}@{domain}", rng.random_range(1..10_000));
        if used.insert(candidate.clone()) {
            return candidate;
        }
    }
}

fn new_person(
    rng: &mut SmallRng,
    id: u64,
    prev: Option<&Person>,
    used_emails: &mut HashSet<String>,
) -> Person {
    // Households: a new person sometimes lives with the previous one.
    let household = prev.filter(|_| rng.random_ratio(15, 100));
    let locale = match household {
        Some(p) => p.locale,
        None => {
            let total: u32 = LOCALES.iter().map(|l| l.weight).sum();
            let mut x = rng.random_range(0..total);
            LOCALES
                .iter()
                .find(|l| {
                    if x < l.weight {
                        true
                    } else {
                        x -= l.weight;
                        false
                    }
                })
                .expect("weights cover the range")
        }
    };
    let gender = if rng.random_bool(0.5) { "F" } else { "M" };
    let first = *pick(
        rng,
        if gender == "F" {
            locale.female
        } else {
            locale.male
        },
    );
    let last = match household {
        Some(p) => p.last.clone(),
        None => pick(rng, locale.last).to_string(),
    };
    let birth_days = AS_OF_DAYS - rng.random_range(18 * 365..85 * 365);
    // Some households share one mailbox: a hard case for matching on e-mail.
    let shared = household
        .filter(|_| rng.random_ratio(20, 100))
        .and_then(|p| p.email.clone());
    let email = match shared {
        Some(e) => Some(e),
        None => rng
            .random_ratio(88, 100)
            .then(|| unique_email(rng, used_emails, locale, first, &last)),
    };
    let old_email = rng
        .random_ratio(12, 100)
        .then(|| unique_email(rng, used_emails, locale, first, &last));
    let mobile = rng.random_ratio(80, 100).then(|| {
        let p = pick(rng, locale.mobile_prefixes);
        digits(rng, p, locale.mobile_len)
    });
    let landline = match household {
        Some(p) => p.landline.clone(),
        None => rng.random_ratio(35, 100).then(|| {
            let p = pick(rng, locale.landline_prefixes);
            let len = if locale.country == "US" {
                7
            } else {
                9 - p.len()
            };
            digits(rng, p, len)
        }),
    };
    let address = match household {
        Some(p) => Address {
            street: p.address.street.clone(),
            postcode: p.address.postcode.clone(),
            city: p.address.city,
        },
        None => Address::random(rng, locale),
    };
    let old_address = rng
        .random_ratio(10, 100)
        .then(|| Address::random(rng, locale));
    let company = rng.random_ratio(15, 100).then(|| {
        format!(
            "{} {}",
            pick(rng, COMPANY_WORDS),
            pick(rng, COMPANY_SUFFIXES)
        )
    });
    Person {
        id,
        locale,
        gender,
        first,
        last,
        birth_days,
        email,
        old_email,
        mobile,
        landline,
        address,
        old_address,
        company,
    }
}

/// First name as a source system would have it.
fn first_name_variant(rng: &mut SmallRng, p: &Person) -> String {
    let mut name = p.first.to_string();
    if rng.random_ratio(15, 100) {
        if let Some(n) = nickname(rng, p.locale, p.first) {
            name = n.to_string();
        }
    }
    name_noise(rng, &name)
}

fn name_noise(rng: &mut SmallRng, name: &str) -> String {
    match rng.random_range(0..100) {
        0..=5 => typo(rng, name),
        6..=10 => ascii_fold(name),
        11..=12 => umlaut_expand(name),
        13..=18 => name.to_uppercase(),
        _ => name.to_string(),
    }
}

fn phone_variant(rng: &mut SmallRng, p: &Person, prefer_landline: bool) -> Option<String> {
    let n = if prefer_landline {
        p.landline.as_ref().or(p.mobile.as_ref())
    } else {
        p.mobile.as_ref().or(p.landline.as_ref())
    };
    n.map(|n| phone_format(rng, p.locale, n))
}

fn date_string(days: i32) -> String {
    chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn ts_string(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

const CONFIG_TEMPLATE: &str = include_str!("demo_config.toml");

/// Write the demo project.
pub async fn generate(opts: &DemoOptions) -> Result<DemoReport> {
    let started = Instant::now();
    if opts.persons == 0 {
        return Err(Error::InvalidRequest("--persons must be at least 1".into()));
    }
    let out = &opts.out;
    let data = out.join("data");
    for d in [
        data.clone(),
        data.join("webshop"),
        data.join("webshop/orders"),
        data.join("web_events"),
        data.join("web_sessions"),
    ] {
        std::fs::create_dir_all(&d).map_err(|e| Error::io("cannot create", &d, e))?;
    }
    let bar = if opts.quiet {
        ProgressBar::with_draw_target(Some(opts.persons as u64), ProgressDrawTarget::hidden())
    } else {
        ProgressBar::new(opts.persons as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner:.green} generating people {wide_bar} {human_pos}/{human_len} {eta}",
        )
        .expect("valid template"),
    );

    let mut crm = CsvOut::create(
        &data.join("crm_contacts.csv"),
        b',',
        &[
            "contact_id",
            "full_name",
            "email",
            "phone",
            "street",
            "postcode",
            "city",
            "country",
            "birth_date",
            "company",
            "updated_at",
        ],
    )?;
    // Exported by a Windows tool: Windows-1252, read with `encoding = "auto"`.
    let mut loyalty = CsvOut::create_in(
        &data.join("loyalty_members.csv"),
        b';',
        &[
            "member_id",
            "card_number",
            "first_name",
            "last_name",
            "email",
            "phone",
            "birth_date",
            "gender",
            "tier",
            "points",
            "consent_email",
            "joined_at",
            "updated_at",
        ],
        encoding_rs::WINDOWS_1252,
    )?;
    let mut truth = CsvOut::create(
        &out.join("truth.csv"),
        b',',
        &["source", "record_id", "person_id"],
    )?;
    use PqType::*;
    let mut shop = ParquetOut::create(
        data.join("webshop/customers.parquet"),
        &[
            ("customer_id", Str),
            ("first_name", Str),
            ("last_name", Str),
            ("email", Str),
            ("phone", Str),
            ("street", Str),
            ("postcode", Str),
            ("city", Str),
            ("country", Str),
            ("created_at", Ts),
            ("updated_at", Ts),
        ],
        None,
    )?;
    let mut orders = ParquetOut::create(
        data.join("webshop/orders"),
        &[
            ("order_id", Str),
            ("customer_id", Str),
            ("order_ts", Ts),
            ("product_id", Str),
            ("quantity", Int),
            ("amount", Float),
            ("currency", Str),
            ("channel", Str),
        ],
        Some(500_000),
    )?;
    let mut events = ParquetOut::create(
        data.join("web_events"),
        &[
            ("event_id", Str),
            ("cookie_id", Str),
            ("ts", Ts),
            ("event_type", Str),
            ("page", Str),
            ("product_id", Str),
            ("email", Str),
        ],
        Some(1_000_000),
    )?;

    let mut web_sessions = ParquetOut::create(
        data.join("web_sessions"),
        &[
            ("session_id", Str),
            ("cookie_id", Str),
            ("started_at", Ts),
            ("device", Str),
            ("utm_source", Str),
            ("utm_medium", Str),
            ("utm_campaign", Str),
            ("customer_id", Str),
        ],
        Some(1_000_000),
    )?;
    let mut session_n = 0u64;

    let mut rng = SmallRng::seed_from_u64(opts.seed);
    let mut prev: Option<Person> = None;
    let mut used_emails: HashSet<String> = HashSet::with_capacity(opts.persons + opts.persons / 8);
    let (mut crm_n, mut shop_n, mut loyalty_n, mut order_n, mut event_n, mut cookie_n) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    // Product prices, fixed per catalogue entry.
    let prices: Vec<f64> = (0..PRODUCTS)
        .map(|i| 4.99 + ((i * 7919) % 300) as f64 + 0.5 * (i % 2) as f64)
        .collect();

    for i in 0..opts.persons {
        let p = new_person(&mut rng, i as u64 + 1, prev.as_ref(), &mut used_emails);
        let pid = p.id.to_string();
        let in_shop = rng.random_ratio(55, 100);
        let in_crm = rng.random_ratio(45, 100);
        let in_loyalty = rng.random_ratio(35, 100);
        let on_web = rng.random_ratio(60, 100);
        // Everyone appears somewhere.
        let in_crm = in_crm || !(in_shop || in_loyalty || on_web);

        if in_crm {
            let copies = if rng.random_ratio(4, 100) { 2 } else { 1 };
            for _ in 0..copies {
                crm_n += 1;
                let id = format!("C{crm_n:07}");
                let first = first_name_variant(&mut rng, &p);
                let last = name_noise(&mut rng, &p.last);
                let full = match rng.random_range(0..10) {
                    0..=4 => format!("{first} {last}"),
                    5..=6 => format!("{}, {first}", last.to_uppercase()),
                    7 => format!("{last}, {first}"),
                    8 => format!("{} {}", first.to_uppercase(), last.to_uppercase()),
                    _ => format!("{}. {last}", first.chars().next().unwrap_or('X')),
                };
                let stale = rng.random_ratio(20, 100);
                let email = if stale {
                    p.old_email.clone().or(p.email.clone())
                } else {
                    p.email.clone()
                };
                let email = email
                    .filter(|_| rng.random_ratio(90, 100))
                    .map(|e| email_variant(&mut rng, &e));
                let addr = if stale {
                    p.old_address.as_ref().unwrap_or(&p.address)
                } else {
                    &p.address
                };
                let landline_first = rng.random_ratio(30, 100);
                let phone = phone_variant(&mut rng, &p, landline_first);
                let birth = rng.random_ratio(60, 100).then(|| date_string(p.birth_days));
                let updated = ts_days_ago(&mut rng, if stale { 2000 } else { 400 });
                let company = p.company.clone().filter(|_| rng.random_ratio(70, 100));
                let fields = [
                    Some(id.clone()),
                    Some(full),
                    email,
                    phone,
                    Some(addr.street.clone()),
                    Some(addr.postcode.clone()),
                    Some(casing(&mut rng, addr.city, 10)),
                    Some(p.locale.country.to_string()),
                    birth,
                    company,
                    Some(ts_string(updated)),
                ];
                // Now and then an export tool breaks a line: an unquoted comma in the company
                // name, or a name saved as Latin-1. These rows must end up in `rejects`.
                if rng.random_ratio(1, 5_000) {
                    let mut line: Vec<String> = fields
                        .iter()
                        .map(|f| f.clone().unwrap_or_default())
                        .collect();
                    line[9] = "Acme, Inc.".into();
                    crm.raw_line(line.join(",").as_bytes())?;
                } else if rng.random_ratio(1, 10_000) {
                    let mut bytes = Vec::new();
                    bytes.extend_from_slice(format!("{id},M").as_bytes());
                    bytes.push(0xFC); // "ü" in Latin-1
                    bytes.extend_from_slice(b"ller Hans,,,,,,DE,,,2026-01-01 00:00:00");
                    crm.raw_line(&bytes)?;
                } else {
                    crm.row(&fields)?;
                }
                truth.row(&[Some("crm_contacts".into()), Some(id), Some(pid.clone())])?;
            }
        }

        let mut shop_ids = Vec::new();
        if in_shop {
            let copies = if rng.random_ratio(5, 100) { 2 } else { 1 };
            for c in 0..copies {
                shop_n += 1;
                let id = format!("W{shop_n:07}");
                // A second account is usually opened with another address or a typo.
                let email = if c == 1 {
                    p.old_email.clone().or(p.email.clone())
                } else {
                    p.email.clone()
                };
                let email = email.map(|e| email_variant(&mut rng, &e));
                let created = ts_days_ago(&mut rng, 3 * 365);
                let updated =
                    created + rng.random_range(0..(AS_OF_DAYS as i64 * DAY_US - created).max(1));
                shop.str(Some(&id));
                shop.str(Some(&first_name_variant(&mut rng, &p)));
                shop.str(Some(&name_noise(&mut rng, &p.last)));
                shop.str(email.as_deref());
                shop.str(phone_variant(&mut rng, &p, false).as_deref());
                shop.str(
                    Some(&p.address.street)
                        .filter(|_| rng.random_ratio(92, 100))
                        .map(String::as_str),
                );
                shop.str(Some(p.address.postcode.replace(' ', "")).as_deref());
                shop.str(Some(p.address.city));
                shop.str(Some(p.locale.country));
                shop.ts(Some(created));
                shop.ts(Some(updated));
                shop.end_row()?;
                truth.row(&[
                    Some("webshop_customers".into()),
                    Some(id.clone()),
                    Some(pid.clone()),
                ])?;
                shop_ids.push((id, created));
            }
        }

        // Orders: a long tail; a few customers buy a lot. Like real buyers, many stop at some
        // point (their orders end there: what churn and lifetime-value models learn from),
        // and most buy mostly in one category of the catalogue (what co-purchase
        // recommendations learn from).
        let mut person_orders: Vec<sessions::Order> = Vec::new();
        for (cid, created) in &shop_ids {
            let n = match rng.random_range(0..100) {
                0..=19 => 0,
                20..=59 => rng.random_range(1..3),
                60..=89 => rng.random_range(3..8),
                _ => rng.random_range(8..30),
            };
            let since = ((AS_OF_DAYS as i64 * DAY_US - created) / DAY_US).max(1) as i32;
            // Drawn from a stream of their own, so the main stream (and with it every other
            // source of a seed) is what it was before buyers had these habits.
            let mut habits =
                SmallRng::seed_from_u64(opts.seed ^ order_n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            // Days before as_of the customer stopped buying (0: still buying).
            let stopped = if habits.random_ratio(45, 100) {
                habits.random_range(0..since) as i64
            } else {
                0
            };
            let category = habits.random_range(0..CATEGORIES);
            for _ in 0..n {
                order_n += 1;
                // A day of the customer's buying years, squeezed before the day they stopped.
                let drawn = ts_days_ago(&mut rng, since);
                let offset = AS_OF_DAYS as i64 * DAY_US - drawn;
                let ts = AS_OF_DAYS as i64 * DAY_US
                    - (stopped * DAY_US + offset * (since as i64 - stopped) / since as i64);
                // Zipf-like popularity: low product numbers sell more; 70% of orders in the
                // customer's own category.
                let r: f64 = rng.random();
                let product = if habits.random_ratio(70, 100) {
                    let per = PRODUCTS / CATEGORIES;
                    category * per + ((r * r * r) * per as f64) as usize
                } else {
                    ((r * r * r) * PRODUCTS as f64) as usize
                };
                let qty = if rng.random_ratio(85, 100) {
                    1
                } else {
                    rng.random_range(2..5)
                };
                let channel = *pick(&mut rng, &["online", "online", "online", "app", "store"]);
                orders.str(Some(&format!("O{order_n:09}")));
                orders.str(Some(cid));
                orders.ts(Some(ts));
                orders.str(Some(&format!("P{:04}", product + 1)));
                orders.int(Some(qty));
                orders.float(Some((prices[product] * qty as f64 * 100.0).round() / 100.0));
                orders.str(Some(match p.locale.country {
                    "US" => "USD",
                    "GB" => "GBP",
                    _ => "EUR",
                }));
                orders.str(Some(channel));
                orders.end_row()?;
                person_orders.push(sessions::Order {
                    ts,
                    channel,
                    account: cid.clone(),
                });
            }
        }

        if in_loyalty {
            loyalty_n += 1;
            let id = format!("L{loyalty_n:07}");
            let points: i64 = {
                let r: f64 = rng.random();
                (r * r * 6000.0) as i64
            };
            let tier = match points {
                0..=499 => "Bronze",
                500..=1499 => "Silver",
                1500..=3999 => "Gold",
                _ => "Platinum",
            };
            let joined = ts_days_ago(&mut rng, 8 * 365);
            let updated = joined.max(ts_days_ago(&mut rng, 365));
            let fields = [
                Some(id.clone()),
                Some(digits(&mut rng, "6036", 12)),
                Some(first_name_variant(&mut rng, &p)),
                Some(name_noise(&mut rng, &p.last)),
                p.email
                    .clone()
                    .filter(|_| rng.random_ratio(80, 100))
                    .map(|e| email_variant(&mut rng, &e)),
                phone_variant(&mut rng, &p, false),
                rng.random_ratio(90, 100).then(|| date_string(p.birth_days)),
                rng.random_ratio(95, 100).then(|| p.gender.to_string()),
                Some(tier.to_string()),
                Some(points.to_string()),
                Some(
                    if rng.random_ratio(65, 100) {
                        "true"
                    } else {
                        "false"
                    }
                    .to_string(),
                ),
                Some(ts_string(joined)),
                Some(ts_string(updated)),
            ];
            loyalty.row(&fields)?;
            truth.row(&[Some("loyalty_members".into()), Some(id), Some(pid.clone())])?;
        }

        let mut person_cookies = Vec::new();
        if on_web {
            let cookies = if rng.random_ratio(30, 100) { 2 } else { 1 };
            for _ in 0..cookies {
                cookie_n += 1;
                let cookie = format!(
                    "ck_{:012x}",
                    (cookie_n.wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 16
                );
                truth.row(&[
                    Some("web_events".into()),
                    Some(cookie.clone()),
                    Some(pid.clone()),
                ])?;
                person_cookies.push(cookie.clone());
                let n = rng.random_range(1..9);
                // Some visitors log in (or sign up) at some point and reveal their e-mail.
                let identify_at = rng.random_ratio(35, 100).then(|| rng.random_range(0..n));
                let mut ts = ts_days_ago(&mut rng, 365);
                for k in 0..n {
                    event_n += 1;
                    ts += rng.random_range(5..3_600i64) * 1_000_000;
                    let (kind, email) = if identify_at == Some(k) && p.email.is_some() {
                        let kind = if rng.random_bool(0.7) {
                            "login"
                        } else {
                            "newsletter_signup"
                        };
                        (kind, p.email.clone())
                    } else {
                        (
                            *pick(
                                &mut rng,
                                &[
                                    "page_view",
                                    "page_view",
                                    "product_view",
                                    "add_to_cart",
                                    "search",
                                ],
                            ),
                            None,
                        )
                    };
                    let product = (kind == "product_view" || kind == "add_to_cart")
                        .then(|| format!("P{:04}", rng.random_range(1..=PRODUCTS)));
                    let page = match (kind, &product) {
                        (_, Some(pr)) => format!("/products/{pr}"),
                        ("search", _) => "/search".to_string(),
                        ("login", _) => "/account/login".to_string(),
                        ("newsletter_signup", _) => "/newsletter".to_string(),
                        _ => (*pick(&mut rng, &["/", "/sale", "/new", "/stores", "/help"]))
                            .to_string(),
                    };
                    events.str(Some(&format!("E{event_n:010}")));
                    events.str(Some(&cookie));
                    events.ts(Some(ts));
                    events.str(Some(kind));
                    events.str(Some(&page));
                    events.str(product.as_deref());
                    events.str(email.as_deref());
                    events.end_row()?;
                }
            }
        }
        for v in sessions::sessions_of(opts.seed, p.id, &person_cookies, &person_orders) {
            session_n += 1;
            web_sessions.str(Some(&format!("S{session_n:010}")));
            web_sessions.str(Some(&v.cookie));
            web_sessions.ts(Some(v.ts));
            web_sessions.str(Some(v.device));
            web_sessions.str(v.utm_source);
            web_sessions.str(v.utm_medium);
            web_sessions.str(v.utm_campaign);
            web_sessions.str(v.customer_id.as_deref());
            web_sessions.end_row()?;
        }
        prev = Some(p);
        if i % 4096 == 0 {
            bar.set_position(i as u64);
        }
    }
    bar.finish_and_clear();

    let files = vec![
        ("data/crm_contacts.csv".to_string(), crm.finish()?),
        ("data/webshop/customers.parquet".to_string(), shop.finish()?),
        ("data/webshop/orders/".to_string(), orders.finish()?),
        ("data/loyalty_members.csv".to_string(), loyalty.finish()?),
        ("data/web_events/".to_string(), events.finish()?),
        ("data/web_sessions/".to_string(), web_sessions.finish()?),
        ("truth.csv".to_string(), truth.finish()?),
    ];

    let loyalty_source = match &opts.postgres {
        Some(url) => {
            let rows = writers::load_loyalty_into_postgres(url, &data.join("loyalty_members.csv")).await?;
            tracing::info!(rows, "loyalty members loaded into PostgreSQL");
            format!(
                "[sources.loyalty_members]\nformat = \"postgres\"\nlocation = \"{}\"\ntable = \"loyalty.members\"\nprimary_key = \"member_id\"\ndescription = \"Loyalty programme members, read from PostgreSQL\"\n",
                url.replace('"', "\\\"")
            )
        }
        None => "[sources.loyalty_members]\nlocation = \"data/loyalty_members.csv\"\nformat = \"csv\"\nprimary_key = \"member_id\"\nencoding = \"auto\"\ncsv = { delimiter = \";\" }\ntypes = { card_number = \"string\", birth_date = \"date\", joined_at = \"timestamp\", updated_at = \"timestamp\", points = \"int\", consent_email = \"bool\" }\ndescription = \"Loyalty programme members, exported by a Windows tool: ; as separator, Windows-1252 (found by encoding = auto)\"\n".to_string(),
    };
    let config = CONFIG_TEMPLATE
        .replace("{persons}", &opts.persons.to_string())
        .replace("{seed}", &opts.seed.to_string())
        .replace("{loyalty_source}", &loyalty_source);
    let cfg_path = out.join(crate::config::CONFIG_FILE);
    std::fs::write(&cfg_path, config).map_err(|e| Error::io("cannot write", &cfg_path, e))?;

    Ok(DemoReport {
        out: out.clone(),
        persons: opts.persons,
        files,
        seconds: started.elapsed().as_secs_f64(),
    })
}

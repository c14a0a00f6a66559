//! Informal first names and the formal name they stand for, for the locales Panorama's demo
//! generates (en, de, nl, fr, es). Keys and values are in `normalize_name` form (ASCII,
//! lower-case). A nickname shared by two formal names maps to the first one listed.

use std::collections::HashMap;
use std::sync::OnceLock;

/// (nickname, formal name).
pub const NICKNAMES: &[(&str, &str)] = &[
    // English
    ("bob", "robert"),
    ("bobby", "robert"),
    ("rob", "robert"),
    ("robbie", "robert"),
    ("bert", "robert"),
    ("bill", "william"),
    ("billy", "william"),
    ("will", "william"),
    ("willy", "william"),
    ("liam", "william"),
    ("jon", "jonathan"),
    ("jonny", "jonathan"),
    ("nathan", "jonathan"),
    ("liz", "elizabeth"),
    ("beth", "elizabeth"),
    ("betty", "elizabeth"),
    ("eliza", "elizabeth"),
    ("lizzie", "elizabeth"),
    ("kate", "katherine"),
    ("katie", "katherine"),
    ("kathy", "katherine"),
    ("kat", "katherine"),
    ("mike", "michael"),
    ("mick", "michael"),
    ("mikey", "michael"),
    ("jim", "james"),
    ("jimmy", "james"),
    ("jamie", "james"),
    ("rick", "richard"),
    ("dick", "richard"),
    ("rich", "richard"),
    ("richie", "richard"),
    ("maggie", "margaret"),
    ("peggy", "margaret"),
    ("meg", "margaret"),
    ("greet", "margaretha"),
    ("tom", "thomas"),
    ("tommy", "thomas"),
    ("chris", "christopher"),
    ("kit", "christopher"),
    ("jen", "jennifer"),
    ("jenny", "jennifer"),
    ("dan", "daniel"),
    ("danny", "daniel"),
    ("tony", "anthony"),
    ("pat", "patricia"),
    ("patty", "patricia"),
    ("trish", "patricia"),
    ("joe", "joseph"),
    ("joey", "joseph"),
    ("matt", "matthew"),
    ("steve", "steven"),
    ("stevie", "steven"),
    ("becky", "rebecca"),
    ("becca", "rebecca"),
    ("sue", "susan"),
    ("susie", "susan"),
    ("mandy", "amanda"),
    ("charlie", "charles"),
    ("chuck", "charles"),
    ("ted", "edward"),
    ("eddie", "edward"),
    ("ed", "edward"),
    ("harry", "henry"),
    ("hank", "henry"),
    ("alex", "alexander"),
    ("sasha", "alexander"),
    ("vicky", "victoria"),
    ("tori", "victoria"),
    ("ellie", "eleanor"),
    ("nell", "eleanor"),
    ("sandy", "alexandra"),
    // German
    ("hans", "johannes"),
    ("jo", "johannes"),
    ("wolf", "wolfgang"),
    ("fritz", "friedrich"),
    ("lisa", "elisabeth"),
    ("elli", "elisabeth"),
    ("sissi", "elisabeth"),
    ("kathi", "katharina"),
    ("katja", "katharina"),
    ("andi", "andreas"),
    ("matze", "matthias"),
    ("steffen", "stefan"),
    ("uschi", "ursula"),
    ("gitte", "brigitte"),
    ("sepp", "josef"),
    // Dutch
    ("jan", "johannes"),
    ("henk", "hendrik"),
    ("kees", "cornelis"),
    ("koos", "jacobus"),
    ("piet", "pieter"),
    ("wim", "willem"),
    ("mien", "wilhelmina"),
    ("annie", "johanna"),
    ("truus", "geertruida"),
    ("corrie", "cornelia"),
    ("joop", "johannes"),
    ("klaas", "nicolaas"),
    // French
    ("fred", "frederic"),
    ("nico", "nicolas"),
    ("seb", "sebastien"),
    ("dom", "dominique"),
    ("isa", "isabelle"),
    ("nat", "nathalie"),
    ("jb", "jean baptiste"),
    ("manu", "emmanuel"),
    // Spanish
    ("pepe", "jose"),
    ("paco", "francisco"),
    ("manolo", "manuel"),
    ("nacho", "ignacio"),
    ("lola", "dolores"),
    ("concha", "concepcion"),
    ("toni", "antonio"),
    ("chuy", "jesus"),
    ("merche", "mercedes"),
    ("lupe", "guadalupe"),
    ("quique", "enrique"),
    ("chema", "jose maria"),
    ("pili", "pilar"),
    ("maite", "maria teresa"),
];

fn table() -> &'static HashMap<&'static str, &'static str> {
    static TABLE: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut m = HashMap::with_capacity(NICKNAMES.len());
        for (nick, formal) in NICKNAMES {
            m.entry(*nick).or_insert(*formal);
        }
        m
    })
}

/// The formal name for a normalized first name, or the name itself.
pub fn canonical(normalized_first: &str) -> &str {
    table()
        .get(normalized_first)
        .copied()
        .unwrap_or(normalized_first)
}

//! `[messages.<name>]`: templated messages with placeholders named as marketers see them.
//!
//! `Hi {{First Name}}, you have {{Loyalty Points}} points`: each placeholder is mapped in
//! `fields` to a column of `customer_profiles` (profile field or measure), optionally with a
//! default for customers who have no value. Placeholders are rewritten to plain variables and
//! rendered by minijinja (so `{{First Name | upper}}` and `{% if %}` work too); an HTML body
//! escapes every value.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Problem;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageDef {
    /// email, sms, push, ... (kept with each rendered message).
    pub channel: String,
    /// Column of `customer_profiles` holding the address (e.g. email, phone_e164).
    pub to: String,
    #[serde(default)]
    pub subject: Option<String>,
    pub body: String,
    /// The body is HTML: values are HTML-escaped. Default: true for e-mail.
    #[serde(default)]
    pub html: Option<bool>,
    /// Placeholder name → column, or `{ column, default }`.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldDef>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FieldDef {
    Column(String),
    Full {
        column: String,
        #[serde(default)]
        default: Option<String>,
    },
}

impl FieldDef {
    pub fn column(&self) -> &str {
        match self {
            FieldDef::Column(c) | FieldDef::Full { column: c, .. } => c,
        }
    }
    pub fn default(&self) -> Option<&str> {
        match self {
            FieldDef::Column(_) => None,
            FieldDef::Full { default, .. } => default.as_deref(),
        }
    }
}

/// A message ready to render: templates compiled, placeholders resolved to variables.
pub struct Compiled {
    env: minijinja::Environment<'static>,
    has_subject: bool,
    /// Variable name (`f0`, `f1`, ...) → placeholder name.
    pub variables: Vec<(String, String)>,
}

/// Rewrite `{{ Name | filter }}` to `{{ fN | filter }}`; names not in `fields` are returned.
fn rewrite(text: &str, fields: &[String], unknown: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = &after[..end];
        let (name, filters) = match inner.find('|') {
            Some(i) => (inner[..i].trim(), &inner[i..]),
            None => (inner.trim(), ""),
        };
        match fields.iter().position(|f| f == name) {
            Some(i) => out.push_str(&format!("{{{{ f{i} {filters}}}}}")),
            None => {
                if !unknown.iter().any(|u| u == name) {
                    unknown.push(name.to_string());
                }
                out.push_str(&format!("{{{{{inner}}}}}"));
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

impl MessageDef {
    /// Compile; errors name unknown placeholders (all of them) and template syntax errors.
    pub fn compile(&self, name: &str) -> Result<Compiled, Problem> {
        let names: Vec<String> = self.fields.keys().cloned().collect();
        let mut unknown = Vec::new();
        let subject = self
            .subject
            .as_deref()
            .map(|s| rewrite(s, &names, &mut unknown));
        let body = rewrite(&self.body, &names, &mut unknown);
        if !unknown.is_empty() {
            return Err(Problem(format!(
                "messages.{name}: unknown placeholders {}: map each in [messages.{name}.fields] to a column (placeholders: {})",
                unknown
                    .iter()
                    .map(|u| format!("{{{{{u}}}}}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            )));
        }
        let html = self.html.unwrap_or(self.channel == "email");
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|n| {
            if n.ends_with(".html") {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        let body_name = if html { "body.html" } else { "body.txt" };
        env.add_template_owned(body_name, body)
            .map_err(|e| Problem(format!("messages.{name}.body: {e}")))?;
        if let Some(s) = subject.clone() {
            env.add_template_owned("subject.txt", s)
                .map_err(|e| Problem(format!("messages.{name}.subject: {e}")))?;
        }
        Ok(Compiled {
            env,
            has_subject: subject.is_some(),
            variables: names
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("f{i}"), n.clone()))
                .collect(),
        })
    }
}

impl Compiled {
    /// Render for one customer; `values` by placeholder name, defaults already applied.
    pub fn render(
        &self,
        values: &BTreeMap<String, String>,
    ) -> Result<(Option<String>, String), minijinja::Error> {
        let ctx: BTreeMap<String, String> = self
            .variables
            .iter()
            .map(|(var, name)| (var.clone(), values.get(name).cloned().unwrap_or_default()))
            .collect();
        let ctx = minijinja::Value::from(ctx);
        let body_name = if self.env.get_template("body.html").is_ok() {
            "body.html"
        } else {
            "body.txt"
        };
        let body = self
            .env
            .get_template(body_name)
            .and_then(|t| t.render(ctx.clone()))?;
        let subject = if self.has_subject {
            Some(
                self.env
                    .get_template("subject.txt")
                    .and_then(|t| t.render(ctx))?,
            )
        } else {
            None
        };
        Ok((subject, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str, html: Option<bool>) -> MessageDef {
        MessageDef {
            channel: "email".into(),
            to: "email".into(),
            subject: Some("{{First Name}}, your points".into()),
            body: body.into(),
            html,
            fields: BTreeMap::from([
                (
                    "First Name".to_string(),
                    FieldDef::Column("first_name".into()),
                ),
                (
                    "Loyalty Points".to_string(),
                    FieldDef::Full {
                        column: "loyalty_points".into(),
                        default: Some("0".into()),
                    },
                ),
            ]),
            description: None,
        }
    }

    #[test]
    fn placeholders_render_and_html_is_escaped() {
        let m = message(
            "<p>Hi {{First Name}}, you have {{ Loyalty Points }} points</p>",
            None,
        );
        let c = m.compile("points").unwrap();
        let values = BTreeMap::from([
            ("First Name".to_string(), "Ann <b>&".to_string()),
            ("Loyalty Points".to_string(), "1250".to_string()),
        ]);
        let (subject, body) = c.render(&values).unwrap();
        assert_eq!(subject.as_deref(), Some("Ann <b>&, your points"));
        assert_eq!(body, "<p>Hi Ann &lt;b&gt;&amp;, you have 1250 points</p>");
    }

    #[test]
    fn text_bodies_are_not_escaped_and_filters_apply() {
        let m = message("Hi {{First Name | upper}}", Some(false));
        let (_, body) = m
            .compile("x")
            .unwrap()
            .render(&BTreeMap::from([(
                "First Name".to_string(),
                "a&b".to_string(),
            )]))
            .unwrap();
        assert_eq!(body, "Hi A&B");
    }

    #[test]
    fn unknown_placeholders_are_all_named() {
        let m = message("Hi {{Frist Name}}, {{Tier}} and {{First Name}}", None);
        let err = m.compile("promo").err().unwrap().0;
        assert!(
            err.contains("unknown placeholders {{Frist Name}}, {{Tier}}"),
            "{err}"
        );
        assert!(err.contains("First Name, Loyalty Points"), "{err}");
    }
}

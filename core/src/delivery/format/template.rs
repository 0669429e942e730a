//! Message templates: plain text with `{{…}}` placeholders, rendered per channel with that
//! channel's escaping.
//!
//! Variables: `{{type}}`, `{{module}}`, `{{id}}` (the event id), `{{occurredAt}}` (RFC 3339),
//! `{{ruleKey}}`, and `{{properties.a.b}}` (a path into the event's properties; array elements by
//! index, `{{properties.items.0}}`). Whitespace inside the braces is ignored. Strings render as
//! they are, numbers and booleans as JSON, `null` as `null`, objects and arrays JSON-encoded.
//!
//! Rule writes call [`parse`] (or [`variables`]) to refuse a malformed template or an unknown
//! variable. At delivery time a property the event does not carry is a [`TemplateError::Missing`]
//! for [`render`]; the formatters use [`render_lenient`], which leaves the placeholder visible
//! instead — a page with a `{{properties.host}}` in it beats no page at 3am.

use serde_json::Value;

use crate::domain::event::Event;

/// How substituted values are escaped for the target's markup. Literal template text is the rule
/// writer's own markup and is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Slack mrkdwn: `&`, `<`, `>` become entities (Slack's only control characters).
    Slack,
    /// Discord markdown: markdown punctuation is backslash-escaped (Discord hides the
    /// backslash before any punctuation).
    Discord,
    /// Adaptive Card text: only the emphasis, code and link characters of its small markdown
    /// subset are backslash-escaped.
    Teams,
    /// Nothing escaped (JSON encoding already protects the structure).
    Plain,
}

/// A template variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Variable {
    Type,
    Module,
    Id,
    OccurredAt,
    RuleKey,
    /// A path under `properties`, e.g. `["a", "b"]` for `properties.a.b`.
    Property(Vec<String>),
}

impl std::fmt::Display for Variable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Type => f.write_str("type"),
            Self::Module => f.write_str("module"),
            Self::Id => f.write_str("id"),
            Self::OccurredAt => f.write_str("occurredAt"),
            Self::RuleKey => f.write_str("ruleKey"),
            Self::Property(path) => write!(f, "properties.{}", path.join(".")),
        }
    }
}

/// Why a template cannot be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unclosed `{{{{` at byte {at}")]
    Unclosed { at: usize },
    #[error("empty placeholder `{{{{}}}}` at byte {at}")]
    Empty { at: usize },
    #[error(
        "unknown variable `{name}` (use type, module, id, occurredAt, ruleKey or properties.<path>)"
    )]
    Unknown { name: String },
    #[error("the event has no `{variable}`")]
    Missing { variable: String },
}

/// A piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Text(String),
    Var { var: Variable, raw: String },
}

/// Parses a template, refusing unclosed or empty placeholders and unknown variables.
pub fn parse(template: &str) -> Result<Vec<Segment>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = template;
    let mut offset = 0;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            out.push(Segment::Text(rest[..start].to_owned()));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(TemplateError::Unclosed { at: offset + start });
        };
        let name = after[..end].trim();
        if name.is_empty() {
            return Err(TemplateError::Empty { at: offset + start });
        }
        out.push(Segment::Var {
            var: parse_variable(name)?,
            raw: rest[start..start + 2 + end + 2].to_owned(),
        });
        let consumed = start + 2 + end + 2;
        rest = &rest[consumed..];
        offset += consumed;
    }
    if !rest.is_empty() {
        out.push(Segment::Text(rest.to_owned()));
    }
    Ok(out)
}

fn parse_variable(name: &str) -> Result<Variable, TemplateError> {
    let unknown = || TemplateError::Unknown {
        name: name.to_owned(),
    };
    match name {
        "type" => Ok(Variable::Type),
        "module" => Ok(Variable::Module),
        "id" => Ok(Variable::Id),
        "occurredAt" => Ok(Variable::OccurredAt),
        "ruleKey" => Ok(Variable::RuleKey),
        _ => {
            let path = name.strip_prefix("properties.").ok_or_else(unknown)?;
            let parts: Vec<String> = path.split('.').map(str::to_owned).collect();
            if parts
                .iter()
                .any(|p| p.is_empty() || p.chars().any(char::is_whitespace))
            {
                return Err(unknown());
            }
            Ok(Variable::Property(parts))
        }
    }
}

/// The variables a template uses, in order of appearance (duplicates kept once).
pub fn variables(template: &str) -> Result<Vec<Variable>, TemplateError> {
    let mut vars = Vec::new();
    for seg in parse(template)? {
        if let Segment::Var { var, .. } = seg
            && !vars.contains(&var)
        {
            vars.push(var);
        }
    }
    Ok(vars)
}

/// What templates are rendered against.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub event: &'a Event,
    pub rule_key: Option<&'a str>,
}

impl Scope<'_> {
    /// The value of a variable as text, unescaped; `None` when the event does not carry it.
    pub fn lookup(&self, var: &Variable) -> Option<String> {
        match var {
            Variable::Type => Some(self.event.event_type.as_str().to_owned()),
            Variable::Module => Some(self.event.module.as_str().to_owned()),
            Variable::Id => Some(self.event.id.as_str().to_owned()),
            Variable::OccurredAt => Some(
                self.event
                    .occurred_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
            Variable::RuleKey => self.rule_key.map(str::to_owned),
            Variable::Property(path) => {
                let mut parts = path.iter();
                let first = parts.next()?;
                let mut value = self.event.properties.get(first.as_str())?;
                for p in parts {
                    value = match value {
                        Value::Object(m) => m.get(p.as_str())?,
                        Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
                        _ => return None,
                    };
                }
                Some(value_text(value))
            }
        }
    }
}

/// A JSON value as message text: strings bare, everything else JSON-encoded.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Renders strictly: a variable the event does not carry is an error.
pub fn render(template: &str, scope: &Scope<'_>, escape: Escape) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    for seg in parse(template)? {
        match seg {
            Segment::Text(t) => out.push_str(&t),
            Segment::Var { var, .. } => {
                let value = scope.lookup(&var).ok_or_else(|| TemplateError::Missing {
                    variable: var.to_string(),
                })?;
                out.push_str(&escape_text(&value, escape));
            }
        }
    }
    Ok(out)
}

/// Renders leniently: a missing variable, or a template that does not parse, shows as written.
pub fn render_lenient(template: &str, scope: &Scope<'_>, escape: Escape) -> String {
    let Ok(segments) = parse(template) else {
        return escape_text(template, escape);
    };
    let mut out = String::with_capacity(template.len());
    for seg in segments {
        match seg {
            Segment::Text(t) => out.push_str(&t),
            Segment::Var { var, raw } => match scope.lookup(&var) {
                Some(value) => out.push_str(&escape_text(&value, escape)),
                None => out.push_str(&escape_text(&raw, escape)),
            },
        }
    }
    out
}

/// Escapes text for a target's markup.
pub fn escape_text(s: &str, escape: Escape) -> String {
    match escape {
        Escape::Plain => s.to_owned(),
        Escape::Slack => {
            let mut out = String::with_capacity(s.len());
            for c in s.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    c => out.push(c),
                }
            }
            out
        }
        Escape::Discord => escape_with(s, |c| {
            matches!(
                c,
                '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '#' | '[' | ']' | '(' | ')' | '-' | '!'
            )
        }),
        Escape::Teams => escape_with(s, |c| matches!(c, '\\' | '*' | '_' | '`' | '[' | ']')),
    }
}

fn escape_with(s: &str, special: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if special(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::format::tests_support::event;

    #[test]
    fn variables_lists_each_variable_once_in_order() {
        let vars =
            variables("{{type}} on {{ properties.host.name }} ({{type}}) {{id}}").expect("parses");
        assert_eq!(
            vars,
            vec![
                Variable::Type,
                Variable::Property(vec!["host".into(), "name".into()]),
                Variable::Id
            ]
        );
    }

    #[test]
    fn malformed_templates_are_refused_with_the_reason() {
        assert_eq!(parse("hi {{type"), Err(TemplateError::Unclosed { at: 3 }));
        assert_eq!(parse("{{ }}"), Err(TemplateError::Empty { at: 0 }));
        assert!(
            matches!(parse("{{user.name}}"), Err(TemplateError::Unknown { name }) if name == "user.name")
        );
        assert!(matches!(
            parse("{{properties.}}"),
            Err(TemplateError::Unknown { .. })
        ));
    }

    #[test]
    fn rendering_substitutes_nested_properties_and_escapes_values_only() {
        let ev = event(
            "ops",
            "deploy.failed",
            serde_json::json!({"svc": {"name": "a<b>&c"}, "n": 3, "tags": ["x"]}),
        );
        let scope = Scope {
            event: &ev,
            rule_key: Some("deploys"),
        };
        let out = render("<b>{{properties.svc.name}}</b> {{properties.n}} {{properties.tags}} {{properties.tags.0}} {{ruleKey}}", &scope, Escape::Slack)
            .expect("renders");
        assert_eq!(out, "<b>a&lt;b&gt;&amp;c</b> 3 [\"x\"] x deploys");
    }

    #[test]
    fn a_missing_property_is_an_error_strictly_and_visible_leniently() {
        let ev = event("ops", "deploy.failed", serde_json::json!({}));
        let scope = Scope {
            event: &ev,
            rule_key: None,
        };
        assert_eq!(
            render("host {{properties.host}}", &scope, Escape::Plain),
            Err(TemplateError::Missing {
                variable: "properties.host".into()
            })
        );
        assert_eq!(
            render_lenient(
                "host {{properties.host}} {{ruleKey}}",
                &scope,
                Escape::Plain
            ),
            "host {{properties.host}} {{ruleKey}}"
        );
    }

    #[test]
    fn discord_escaping_neutralises_markdown() {
        assert_eq!(
            escape_text("*bold* _x_ `c`", Escape::Discord),
            "\\*bold\\* \\_x\\_ \\`c\\`"
        );
    }
}

//! `template.yaml` read as data: CloudFormation's short-form tags (`!Ref`, `!GetAtt`, `!Sub`, …)
//! kept as [`Cfn::Intrinsic`] nodes, and a [`Resolver`] that turns the parts the emulator needs
//! into plain JSON — `Ref` to parameters (their defaults, or test overrides), pseudo parameters
//! and the resources the test created; `GetAtt` to their attributes; `Sub` over both.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// A template node: YAML data, with intrinsic functions kept apart.
#[derive(Debug, Clone, PartialEq)]
pub enum Cfn {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    List(Vec<Cfn>),
    Map(BTreeMap<String, Cfn>),
    /// `!Ref X`, `!GetAtt A.B`, `{"Fn::Sub": …}`, …: the function name without `!`/`Fn::`.
    Intrinsic(String, Box<Cfn>),
}

impl<'de> Deserialize<'de> for Cfn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CfnVisitor)
    }
}

struct CfnVisitor;

impl<'de> Visitor<'de> for CfnVisitor {
    type Value = Cfn;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a CloudFormation template node")
    }
    fn visit_unit<E>(self) -> Result<Cfn, E> {
        Ok(Cfn::Null)
    }
    fn visit_none<E>(self) -> Result<Cfn, E> {
        Ok(Cfn::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Cfn, E> {
        Ok(Cfn::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Cfn, E> {
        Ok(Cfn::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Cfn, E> {
        Ok(Cfn::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cfn, E> {
        serde_json::Number::from_f64(v)
            .map(Cfn::Number)
            .ok_or_else(|| E::custom("a non-finite number"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Cfn, E> {
        Ok(Cfn::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Cfn, E> {
        Ok(Cfn::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Cfn, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Cfn::List(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Cfn, A::Error> {
        let mut out = BTreeMap::new();
        while let Some((k, v)) = map.next_entry::<String, Cfn>()? {
            out.insert(k, v);
        }
        // The long forms: `{"Ref": X}`, `{"Fn::GetAtt": [A, B]}`.
        if out.len() == 1 {
            let (k, _) = out.first_key_value().expect("one entry");
            let name = if k == "Ref" {
                Some("Ref".to_owned())
            } else {
                k.strip_prefix("Fn::").map(str::to_owned)
            };
            if let Some(name) = name {
                let (_, v) = out.pop_first().expect("one entry");
                return Ok(Cfn::Intrinsic(name, Box::new(v)));
            }
        }
        Ok(Cfn::Map(out))
    }
    /// The short forms: YAML tags, which serde_norway hands over as an enum.
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Cfn, A::Error> {
        let (tag, variant) = data.variant::<String>()?;
        let value: Cfn = de::VariantAccess::newtype_variant(variant)?;
        let name = tag.trim_start_matches('!').to_owned();
        Ok(Cfn::Intrinsic(name, Box::new(value)))
    }
}

impl Cfn {
    pub fn get(&self, key: &str) -> Option<&Cfn> {
        match self {
            Cfn::Map(m) => m.get(key),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Cfn::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Cfn::Number(n) => n.as_u64(),
            Cfn::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    pub fn entries(&self) -> impl Iterator<Item = (&String, &Cfn)> {
        match self {
            Cfn::Map(m) => Some(m.iter()),
            _ => None,
        }
        .into_iter()
        .flatten()
    }

    /// The logical id a `!GetAtt X.Attr` or `!Ref X` names, unresolved.
    pub fn referenced_resource(&self) -> Option<&str> {
        match self {
            Cfn::Intrinsic(f, arg) if f == "Ref" => arg.as_str(),
            Cfn::Intrinsic(f, arg) if f == "GetAtt" => match arg.as_ref() {
                Cfn::String(s) => s.split('.').next(),
                Cfn::List(l) => l.first().and_then(Cfn::as_str),
                _ => None,
            },
            _ => None,
        }
    }
}

/// The parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    root: Cfn,
}

/// A function of the template, as far as cost and the event-source simulation need it.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    pub logical_id: String,
    pub memory_mb: u64,
    pub timeout_s: u64,
    /// The SQS event source: the queue's logical id and the batch size.
    pub sqs_source: Option<(String, usize)>,
}

impl Template {
    /// The repository's `template.yaml`.
    pub fn repository() -> anyhow::Result<Self> {
        Self::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"))
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(Self {
            root: serde_norway::from_str(text)?,
        })
    }

    /// Every parameter's default.
    pub fn parameter_defaults(&self) -> HashMap<String, String> {
        self.root
            .get("Parameters")
            .map(|p| {
                p.entries()
                    .filter_map(|(name, spec)| {
                        let default = match spec.get("Default")? {
                            Cfn::String(s) => s.clone(),
                            Cfn::Number(n) => n.to_string(),
                            Cfn::Bool(b) => b.to_string(),
                            _ => return None,
                        };
                        Some((name.clone(), default))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `(logical id, Properties)` of every resource of type `ty`, in logical-id order.
    pub fn resources_of_type(&self, ty: &str) -> Vec<(&str, &Cfn)> {
        static EMPTY: Cfn = Cfn::Null;
        self.root
            .get("Resources")
            .map(|r| {
                r.entries()
                    .filter(|(_, res)| res.get("Type").and_then(Cfn::as_str) == Some(ty))
                    .map(|(id, res)| (id.as_str(), res.get("Properties").unwrap_or(&EMPTY)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The Lambda functions, with `Globals.Function` applied.
    pub fn functions(&self) -> Vec<FunctionSpec> {
        let globals = self.root.get("Globals").and_then(|g| g.get("Function"));
        let global_num = |k: &str| globals.and_then(|g| g.get(k)).and_then(Cfn::as_u64);
        self.resources_of_type("AWS::Serverless::Function")
            .into_iter()
            .map(|(id, props)| {
                let num = |k: &str| props.get(k).and_then(Cfn::as_u64).or_else(|| global_num(k));
                let sqs_source = props.get("Events").and_then(|events| {
                    events.entries().find_map(|(_, e)| {
                        if e.get("Type").and_then(Cfn::as_str) != Some("SQS") {
                            return None;
                        }
                        let p = e.get("Properties")?;
                        let queue = p.get("Queue")?.referenced_resource()?.to_owned();
                        let batch = p.get("BatchSize").and_then(Cfn::as_u64).unwrap_or(10);
                        Some((queue, usize::try_from(batch).unwrap_or(10)))
                    })
                });
                FunctionSpec {
                    logical_id: id.to_owned(),
                    memory_mb: num("MemorySize").unwrap_or(128),
                    timeout_s: num("Timeout").unwrap_or(3),
                    sqs_source,
                }
            })
            .collect()
    }

    /// The function consuming the queue `queue_logical_id`.
    pub fn consumer_of(&self, queue_logical_id: &str) -> anyhow::Result<FunctionSpec> {
        self.functions()
            .into_iter()
            .find(|f| {
                f.sqs_source
                    .as_ref()
                    .is_some_and(|(q, _)| q == queue_logical_id)
            })
            .ok_or_else(|| anyhow!("no function consumes {queue_logical_id}"))
    }
}

/// What a created resource answers to `Ref` and `GetAtt`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Physical {
    pub reference: String,
    pub attributes: HashMap<String, String>,
}

/// Resolves intrinsic functions against parameters and created resources.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    pub parameters: HashMap<String, String>,
    pub resources: HashMap<String, Physical>,
}

impl Resolver {
    /// `node` as plain JSON. Fails on an intrinsic it cannot resolve (a resource not created,
    /// a function the test does not need): better than provisioning something half right.
    pub fn resolve(&self, node: &Cfn) -> anyhow::Result<serde_json::Value> {
        use serde_json::Value as J;
        Ok(match node {
            Cfn::Null => J::Null,
            Cfn::Bool(b) => J::Bool(*b),
            Cfn::Number(n) => J::Number(n.clone()),
            Cfn::String(s) => J::String(s.clone()),
            Cfn::List(l) => J::Array(
                l.iter()
                    .map(|v| self.resolve(v))
                    .collect::<Result<_, _>>()?,
            ),
            Cfn::Map(m) => J::Object(
                m.iter()
                    .map(|(k, v)| Ok((k.clone(), self.resolve(v)?)))
                    .collect::<anyhow::Result<_>>()?,
            ),
            Cfn::Intrinsic(f, arg) => J::String(self.intrinsic(f, arg)?),
        })
    }

    /// `node` as a string (numbers and booleans as SQS and DynamoDB attributes want them).
    pub fn resolve_string(&self, node: &Cfn) -> anyhow::Result<String> {
        Ok(match self.resolve(node)? {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => bail!("expected a scalar, got {other}"),
        })
    }

    fn intrinsic(&self, f: &str, arg: &Cfn) -> anyhow::Result<String> {
        match f {
            "Ref" => {
                let name = arg.as_str().ok_or_else(|| anyhow!("!Ref of {arg:?}"))?;
                self.reference(name)
            }
            "GetAtt" => {
                let (res, attr) = match arg {
                    Cfn::String(s) => s
                        .split_once('.')
                        .ok_or_else(|| anyhow!("!GetAtt {s} without an attribute"))?,
                    Cfn::List(l) => match l.as_slice() {
                        [Cfn::String(r), Cfn::String(a)] => (r.as_str(), a.as_str()),
                        _ => bail!("!GetAtt {l:?}"),
                    },
                    other => bail!("!GetAtt {other:?}"),
                };
                self.attribute(res, attr)
            }
            "Sub" => {
                let (text, vars) = match arg {
                    Cfn::String(s) => (s.as_str(), None),
                    Cfn::List(l) => match l.as_slice() {
                        [Cfn::String(s), vars @ Cfn::Map(_)] => (s.as_str(), Some(vars)),
                        _ => bail!("!Sub {l:?}"),
                    },
                    other => bail!("!Sub {other:?}"),
                };
                self.sub(text, vars)
            }
            other => bail!("intrinsic function {other} is not supported by the test provisioning"),
        }
    }

    fn reference(&self, name: &str) -> anyhow::Result<String> {
        if let Some(p) = self.parameters.get(name) {
            return Ok(p.clone());
        }
        if let Some(r) = self.resources.get(name) {
            return Ok(r.reference.clone());
        }
        bail!("!Ref {name}: not a parameter, pseudo parameter or created resource")
    }

    fn attribute(&self, resource: &str, attr: &str) -> anyhow::Result<String> {
        self.resources
            .get(resource)
            .and_then(|r| r.attributes.get(attr))
            .cloned()
            .ok_or_else(|| anyhow!("!GetAtt {resource}.{attr}: not created"))
    }

    fn sub(&self, text: &str, vars: Option<&Cfn>) -> anyhow::Result<String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| anyhow!("unterminated ${{ in {text}"))?;
            let name = &after[..end];
            let value = match vars.and_then(|v| v.get(name)) {
                Some(v) => self.resolve_string(v)?,
                None => match name.split_once('.') {
                    Some((res, attr)) if !name.starts_with("AWS::") => self.attribute(res, attr)?,
                    _ => self.reference(name)?,
                },
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_intrinsics_are_kept_and_resolved() {
        let t = Template::parse(
            "Parameters:\n  N: {Type: Number, Default: 5}\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      A: !Ref N\n      B: !GetAtt D.Arn\n      C: !Sub \"${AWS::StackName}-q\"\n      E: {\"Fn::GetAtt\": [D, Arn]}\n",
        )
        .expect("parse");
        let mut r = Resolver {
            parameters: t.parameter_defaults(),
            ..Resolver::default()
        };
        r.parameters.insert("AWS::StackName".into(), "s".into());
        r.resources.insert(
            "D".into(),
            Physical {
                reference: "url".into(),
                attributes: HashMap::from([("Arn".into(), "arn:d".into())]),
            },
        );
        let (_, props) = t.resources_of_type("AWS::SQS::Queue")[0];
        let v = r.resolve(props).expect("resolve");
        assert_eq!(
            v,
            serde_json::json!({"A": "5", "B": "arn:d", "C": "s-q", "E": "arn:d"})
        );
    }
}

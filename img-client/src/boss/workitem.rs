//! Ruote workitems as BOSS sends them to participants over AMQP, and the replies made from them.
//!
//! A workitem is `{"fei": {...}, "fields": {...}, "participant_name": "...", ...}`; the
//! participant's attributes in the process definition arrive in `fields.params`. The reply is the
//! whole workitem with its fields changed (everything else is sent back untouched, `fei` above
//! all: it is how the engine finds the waiting expression). A cancel item is
//! `{"cancel": true, "fei": {...}, "flavour": ...}` and gets no reply.

use img_core::job::{Arch, ImageType};
use serde_json::{json, Map, Value};

/// The top-level `error` class of a flunk, as BOSS's receiver constantizes it.
pub const DEFAULT_ERROR_CLASS: &str = "BOSS::RemoteError";

/// What a delivery is.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Workitem(Workitem),
    /// `{"cancel": true, "fei": ...}`: the engine no longer waits for this expression.
    Cancel {
        fei: Value,
    },
    /// Not JSON, or no `fei`: nothing the engine could match a reply to. `reply` still says why,
    /// so the engine's log shows it instead of the message vanishing.
    Malformed {
        reply: Value,
        why: String,
    },
}

/// Reads a delivery's body.
pub fn classify(body: &[u8], participant: &str, error_class: &str) -> Incoming {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            let why = format!("the workitem is not JSON: {e}");
            return Incoming::Malformed { reply: orphan_reply(participant, error_class, &why, body), why };
        }
    };
    let Value::Object(map) = value else {
        let why = "the workitem is not a JSON object".to_owned();
        return Incoming::Malformed { reply: orphan_reply(participant, error_class, &why, body), why };
    };
    let fei = map.get("fei").cloned().unwrap_or(Value::Null);
    if map.get("cancel").and_then(Value::as_bool) == Some(true) {
        return Incoming::Cancel { fei };
    }
    if !fei.is_object() {
        let why = "the workitem has no `fei` object".to_owned();
        let mut wi = Workitem(map);
        wi.fail(&why, Some(error_class));
        return Incoming::Malformed { reply: wi.0.into(), why };
    }
    Incoming::Workitem(Workitem(map))
}

/// A reply for bytes that are no workitem: the participant's verdict and the start of the body.
fn orphan_reply(participant: &str, error_class: &str, why: &str, body: &[u8]) -> Value {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned();
    json!({
        "fei": null,
        "participant_name": participant,
        "fields": {"__result__": false, "__error__": why, "msg": [why]},
        "error": {"class": error_class, "message": why, "trace": []},
        "received": text,
    })
}

/// One workitem; kept as JSON so every field the engine sent goes back as it came.
#[derive(Debug, Clone, PartialEq)]
pub struct Workitem(pub Map<String, Value>);

impl Workitem {
    pub fn fei(&self) -> &Value {
        self.0.get("fei").unwrap_or(&Value::Null)
    }

    /// `wfid` of the fei, for logs.
    pub fn wfid(&self) -> String {
        self.fei().get("wfid").and_then(Value::as_str).unwrap_or("?").to_owned()
    }

    pub fn fields(&self) -> &Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        self.0.get("fields").and_then(Value::as_object).unwrap_or_else(|| EMPTY.get_or_init(Map::new))
    }

    pub fn fields_mut(&mut self) -> &mut Map<String, Value> {
        let fields = self.0.entry("fields").or_insert_with(|| Value::Object(Map::new()));
        if !fields.is_object() {
            *fields = Value::Object(Map::new());
        }
        fields.as_object_mut().expect("made an object above")
    }

    /// A participant attribute from the process definition (`fields.params.NAME`).
    pub fn param(&self, name: &str) -> Option<&Value> {
        self.fields().get("params").and_then(|p| p.get(name)).filter(|v| !v.is_null())
    }

    /// `params.forget`: the engine has moved on and wants no reply.
    pub fn forget(&self) -> bool {
        self.param("forget").is_some_and(truthy)
    }

    /// `fields.image`, made an object if it is missing.
    pub fn image_mut(&mut self) -> &mut Map<String, Value> {
        let image = self.fields_mut().entry("image").or_insert_with(|| Value::Object(Map::new()));
        if !image.is_object() {
            *image = Value::Object(Map::new());
        }
        image.as_object_mut().expect("made an object above")
    }

    /// Appends a human line to `fields.msg` (a list; a lone string becomes its first line).
    pub fn push_msg(&mut self, line: &str) {
        let fields = self.fields_mut();
        let msg = fields.entry("msg").or_insert_with(|| Value::Array(Vec::new()));
        match msg {
            Value::Array(lines) => lines.push(line.into()),
            Value::Null => *msg = json!([line]),
            other => *other = json!([other.clone(), line]),
        }
    }

    pub fn set_result(&mut self, ok: bool) {
        self.fields_mut().insert("__result__".into(), ok.into());
    }

    /// `__result__` false, the cause in `__error__` and `msg`; with `flunk`, also the top-level
    /// `error` that makes the engine put the expression in error (as an exception in the
    /// original's participants did).
    pub fn fail(&mut self, why: &str, flunk: Option<&str>) {
        self.set_result(false);
        self.fields_mut().insert("__error__".into(), why.into());
        self.push_msg(why);
        if let Some(class) = flunk {
            self.0.insert("error".into(), json!({"class": class, "message": why, "trace": []}));
        }
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

/// Ruby/Python truthiness for flags sent as `true`, `"true"`, `"yes"` or `1`.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "yes" | "1"),
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        _ => false,
    }
}

/// What `build_image` and `request_image` read from a workitem.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRequest {
    pub kickstart: String,
    pub image_type: ImageType,
    pub arch: Arch,
    pub name: String,
    /// A job id from request_image (or an earlier build_image) to adopt instead of submitting.
    pub image_id: Option<String>,
    /// `K:V,K2:V2`, as the original passed it to mic.
    pub tokenmap: Option<String>,
    /// mic options the original passed verbatim; the server chooses img-creator's options, so
    /// they are reported as ignored.
    pub extra_opts: Vec<String>,
    pub prefix: Option<String>,
    pub email: Option<String>,
}

/// The flat fields of the original's first API and their `image.*` names.
const FLAT: &[(&str, &str)] = &[
    ("kickstart", "kickstart"),
    ("type", "image_type"),
    ("image_type", "image_type"),
    ("id", "image_id"),
    ("image_id", "image_id"),
    ("name", "name"),
    ("arch", "arch"),
    ("email", "email"),
    ("tokenmap", "tokenmap"),
    ("extra_opts", "extra_opts"),
    ("prefix", "prefix"),
];

/// Reads the image request from `fields.image`, or from the flat fields when there is no
/// `image` object; the flat form is copied into `fields.image` (as the original did), so the
/// reply carries `image.*` either way. Errors name every missing or bad field.
pub fn image_request(wi: &mut Workitem) -> Result<ImageRequest, String> {
    let flat = !wi.fields().get("image").is_some_and(Value::is_object);
    if flat {
        let mut image = Map::new();
        for (from, to) in FLAT {
            if let Some(v) = wi.fields().get(*from).filter(|v| !v.is_null()) {
                image.entry(to.to_string()).or_insert_with(|| v.clone());
            }
        }
        wi.fields_mut().insert("image".into(), Value::Object(image));
    }
    let image = wi.image_mut().clone();
    let text = |key: &str| -> Result<Option<String>, String> {
        match image.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) if key == "image_id" => Ok(Some(n.to_string())),
            Some(other) => Err(format!("image.{key}: expected a string, got {}", kind(other))),
        }
    };
    let mut problems = Vec::new();
    let mut missing = Vec::new();
    let mut mandatory = |key: &str, problems: &mut Vec<String>| match text(key) {
        Ok(Some(v)) => Some(v),
        Ok(None) => {
            missing.push(format!("image.{key}"));
            None
        }
        Err(e) => {
            problems.push(e);
            None
        }
    };
    let kickstart = mandatory("kickstart", &mut problems);
    let image_type = mandatory("image_type", &mut problems);
    let arch = mandatory("arch", &mut problems);
    let name = mandatory("name", &mut problems);
    if !missing.is_empty() {
        problems.insert(
            0,
            format!(
                "missing mandatory field{}: {} (give them in `image`, or flat as kickstart, type, name, arch)",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", ")
            ),
        );
    }
    let image_type =
        image_type.and_then(|t| match t.trim().parse::<ImageType>().and_then(ImageType::check_supported) {
            Ok(t) => Some(t),
            Err(e) => {
                problems.push(format!("image.image_type: {e}"));
                None
            }
        });
    let arch = arch.and_then(|a| match a.trim().parse::<Arch>() {
        Ok(a) => Some(a),
        Err(e) => {
            problems.push(format!("image.arch: {e}"));
            None
        }
    });
    let tokenmap = match image.get("tokenmap") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.trim().to_owned()),
        // `{"RELEASE": "1.0"}` is accepted too.
        Some(Value::Object(m)) => {
            let mut pairs = Vec::new();
            for (k, v) in m {
                match v {
                    Value::String(v) => pairs.push(format!("{k}:{v}")),
                    Value::Number(n) => pairs.push(format!("{k}:{n}")),
                    other => problems.push(format!("image.tokenmap.{k}: expected a string, got {}", kind(other))),
                }
            }
            (!pairs.is_empty()).then(|| pairs.join(","))
        }
        Some(other) => {
            problems.push(format!("image.tokenmap: expected `K:V,...` or an object, got {}", kind(other)));
            None
        }
    };
    if let Some(t) = &tokenmap {
        if let Err(e) = img_core::kickstart::parse_token_map(t) {
            problems.push(format!("image.tokenmap: {e}"));
        }
    }
    let extra_opts = match image.get("extra_opts") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            items.iter().filter_map(Value::as_str).map(str::to_owned).collect()
        }
        Some(other) => {
            problems.push(format!("image.extra_opts: expected a list of strings, got {}", kind(other)));
            Vec::new()
        }
    };
    let mut optional = |key: &str| {
        text(key).unwrap_or_else(|e| {
            problems.push(e);
            None
        })
    };
    let image_id = optional("image_id");
    let prefix = optional("prefix");
    let email = optional("email");
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    match (kickstart, image_type, arch, name) {
        (Some(kickstart), Some(image_type), Some(arch), Some(name)) => Ok(ImageRequest {
            kickstart,
            image_type,
            arch,
            name: name.trim().to_owned(),
            image_id: image_id.map(|s| s.trim().to_owned()),
            tokenmap,
            extra_opts,
            prefix,
            email: email.map(|s| s.trim().to_owned()),
        }),
        _ => Err("the image request is incomplete".into()),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A list of strings from a field that may hold one string, a list, or nothing.
pub fn string_list(v: Option<&Value>, what: &str) -> Result<Vec<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => {
            Ok(s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.trim().to_owned()),
                other => Err(format!("{what}: expected strings, got {}", kind(other))),
            })
            .filter(|r| r.as_ref().map_or(true, |s| !s.is_empty()))
            .collect(),
        Some(other) => Err(format!("{what}: expected a list of strings, got {}", kind(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wi(fields: Value) -> Workitem {
        let v = json!({
            "fei": {"engine_id": "engine", "wfid": "20260101-abc", "subid": "s1", "expid": "0_1"},
            "participant_name": "build_image",
            "fields": fields,
        });
        match classify(v.to_string().as_bytes(), "build_image", DEFAULT_ERROR_CLASS) {
            Incoming::Workitem(w) => w,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn image_namespace_is_read() {
        let mut w = wi(json!({"image": {
            "kickstart": "part / --size 100\n", "image_type": "raw", "arch": "x86_64", "name": "demo",
            "image_id": "abc", "tokenmap": "RELEASE:1.0", "extra_opts": ["--save-kernel"], "prefix": "p",
            "email": "a@b.c"}}));
        let r = image_request(&mut w).unwrap();
        assert_eq!(r.kickstart, "part / --size 100\n");
        assert_eq!(r.image_type, ImageType::Raw);
        assert_eq!(r.arch.as_str(), "x86_64");
        assert_eq!(r.name, "demo");
        assert_eq!(r.image_id.as_deref(), Some("abc"));
        assert_eq!(r.tokenmap.as_deref(), Some("RELEASE:1.0"));
        assert_eq!(r.extra_opts, ["--save-kernel"]);
        assert_eq!((r.prefix.as_deref(), r.email.as_deref()), (Some("p"), Some("a@b.c")));
    }

    #[test]
    fn flat_fields_are_read_and_copied_into_image() {
        let mut w = wi(json!({"kickstart": "ks", "type": "livecd", "id": 42, "name": "n", "arch": "i686",
            "email": "x@y", "tokenmap": {"ARCH": "i686"}}));
        let r = image_request(&mut w).unwrap();
        assert_eq!(r.image_type, ImageType::Livecd);
        assert_eq!(r.image_id.as_deref(), Some("42"));
        assert_eq!(r.tokenmap.as_deref(), Some("ARCH:i686"));
        assert_eq!(r.email.as_deref(), Some("x@y"));
        let image = &w.fields()["image"];
        assert_eq!(image["image_type"], "livecd");
        assert_eq!(image["kickstart"], "ks");
        // The original's `image_type` spelling works flat too.
        let mut w = wi(json!({"kickstart": "ks", "image_type": "fs", "name": "n", "arch": "x86_64"}));
        assert_eq!(image_request(&mut w).unwrap().image_type, ImageType::Fs);
    }

    #[test]
    fn every_problem_is_named() {
        let mut w = wi(json!({"image": {"kickstart": "", "image_type": "nand", "arch": 5, "extra_opts": "x"}}));
        let e = image_request(&mut w).unwrap_err();
        assert!(e.starts_with("missing mandatory fields: image.kickstart, image.name"), "{e}");
        assert!(e.contains("image.arch: expected a string, got a number"), "{e}");
        assert!(e.contains("image.image_type: image type `nand` needs vendor tools"), "{e}");
        assert!(e.contains("image.extra_opts: expected a list of strings, got a string"), "{e}");
        let mut w = wi(json!({}));
        let e = image_request(&mut w).unwrap_err();
        assert!(e.contains("image.kickstart, image.image_type, image.arch, image.name"), "{e}");
        let mut w = wi(json!({"image": {"kickstart": "k", "image_type": "raw", "arch": "x86_64", "name": "n",
            "tokenmap": "no colon"}}));
        assert!(image_request(&mut w).unwrap_err().starts_with("image.tokenmap:"));
    }

    #[test]
    fn failing_keeps_the_fei_and_flunks_when_asked() {
        let mut w = wi(json!({"msg": "earlier"}));
        let fei = w.fei().clone();
        w.fail("bad", Some(DEFAULT_ERROR_CLASS));
        let v = w.into_value();
        assert_eq!(v["fei"], fei);
        assert_eq!(v["fields"]["__result__"], false);
        assert_eq!(v["fields"]["__error__"], "bad");
        assert_eq!(v["fields"]["msg"], json!(["earlier", "bad"]));
        assert_eq!(v["error"]["class"], "BOSS::RemoteError");
        assert_eq!(v["participant_name"], "build_image");
    }

    #[test]
    fn deliveries_are_classified() {
        assert!(matches!(
            classify(b"{\"cancel\": true, \"fei\": {\"wfid\": \"w\"}}", "p", DEFAULT_ERROR_CLASS),
            Incoming::Cancel { .. }
        ));
        let Incoming::Malformed { reply, why } = classify(b"not json", "p", DEFAULT_ERROR_CLASS) else { panic!() };
        assert!(why.starts_with("the workitem is not JSON"), "{why}");
        assert_eq!(reply["fields"]["__result__"], false);
        assert_eq!(reply["received"], "not json");
        let Incoming::Malformed { reply, .. } = classify(b"{\"fields\": {\"a\": 1}}", "p", DEFAULT_ERROR_CLASS) else {
            panic!()
        };
        assert_eq!(reply["fields"]["a"], 1);
        assert_eq!(reply["fields"]["__error__"], "the workitem has no `fei` object");
        let w = wi(json!({"params": {"forget": "true", "action": "get_or_create"}}));
        assert!(w.forget());
        assert_eq!(w.param("action"), Some(&json!("get_or_create")));
    }
}

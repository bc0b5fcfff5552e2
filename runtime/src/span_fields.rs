//! How span fields are kept for the JSON log lines: as the JSON object the log layer's JSON
//! event format reads back (`"span": {...}` in each line), written straight into the span's
//! string instead of through tracing-subscriber's `JsonFields`, which builds a map of
//! `serde_json::Value`s per span and, for a field recorded after the span was made, parses
//! the span's JSON back and writes it again. Spans are made on every request (the request
//! span, `redis.reserve`), logged or not: `JsonFields` was 7% of the gateway's CPU under
//! load.
//!
//! The output parses to the same object as `JsonFields`' (tests below): the same keys
//! (`r#` stripped), numbers and booleans as JSON numbers and booleans, non-finite floats as
//! `null`, byte slices as arrays of numbers, everything else as the string its `Debug` (or
//! `Display`, for errors) writes. Keys keep the order they were recorded in; a key recorded
//! twice appears twice, and the later one wins when the line is read, as in `JsonFields`.

use std::fmt::{self, Write as _};
use tracing::field::{Field, Visit};
use tracing::span::Record;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, FormattedFields};

/// The log layer's span field format (see the module documentation).
#[derive(Debug, Default, Clone, Copy)]
pub struct SpanJsonFields;

impl<'writer> FormatFields<'writer> for SpanJsonFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        writer.write_char('{')?;
        let mut v = ObjectVisitor::new(&mut writer, true);
        fields.record(&mut v);
        v.result?;
        writer.write_char('}')
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &Record<'_>,
    ) -> fmt::Result {
        if current.fields.is_empty() {
            return self.format_fields(current.as_writer(), fields);
        }
        // `current` is an object this type wrote: reopen it, append, close it again.
        if current.fields.ends_with('}') {
            current.fields.pop();
        }
        let first = current.fields.ends_with('{');
        let mut writer = current.as_writer();
        let mut v = ObjectVisitor::new(&mut writer, first);
        fields.record(&mut v);
        let result = v.result;
        current.fields.push('}');
        result
    }
}

/// Writes `"key":value` pairs, comma-separated, into an object already opened.
struct ObjectVisitor<'a, W: fmt::Write> {
    out: &'a mut W,
    first: bool,
    result: fmt::Result,
}

impl<'a, W: fmt::Write> ObjectVisitor<'a, W> {
    fn new(out: &'a mut W, first: bool) -> Self {
        Self {
            out,
            first,
            result: Ok(()),
        }
    }

    /// Writes the separator and the key, then `value`, keeping the first error.
    fn entry(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.result = (|| {
            if !self.first {
                self.out.write_char(',')?;
            }
            self.first = false;
            write_json_str(self.out, name)?;
            self.out.write_char(':')?;
            value(self.out)
        })();
    }
}

impl<W: fmt::Write> Visit for ObjectVisitor<'_, W> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // serde_json's float format, and `null` for what JSON cannot hold (as JsonFields).
        self.entry(field, |w| match serde_json::Number::from_f64(value) {
            Some(n) => write!(w, "{n}"),
            None => w.write_str("null"),
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, |w| write!(w, "{value}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, |w| write_json_str(w, value));
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        self.entry(field, |w| {
            w.write_char('[')?;
            for (i, b) in value.iter().enumerate() {
                if i > 0 {
                    w.write_char(',')?;
                }
                write!(w, "{b}")?;
            }
            w.write_char(']')
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// `s` as a JSON string, quotes included.
fn write_json_str(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(w).write_str(s)?;
    w.write_char('"')
}

/// Escapes what it is given for the inside of a JSON string, so `Debug` output can be
/// written through it without being collected first.
struct Escaped<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, c) in s.char_indices() {
            let escape: Option<&str> = match c {
                '"' => Some("\\\""),
                '\\' => Some("\\\\"),
                '\n' => Some("\\n"),
                '\r' => Some("\\r"),
                '\t' => Some("\\t"),
                c if (c as u32) < 0x20 => None,
                _ => continue,
            };
            self.0.write_str(&s[plain..i])?;
            match escape {
                Some(e) => self.0.write_str(e)?,
                None => write!(self.0, "\\u{:04x}", c as u32)?,
            }
            plain = i + c.len_utf8();
        }
        self.0.write_str(&s[plain..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::format::JsonFields;
    use tracing_subscriber::layer::SubscriberExt;

    /// The `span` object of every line a JSON log layer with field format `N` writes.
    fn span_objects<N>(fields: N, emit: impl FnOnce()) -> Vec<serde_json::Value>
    where
        N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = buf.clone();
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .fmt_fields(fields)
            .with_writer(move || Sink(sink.clone()));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(buf.lock().map(|b| b.clone()).unwrap_or_default())
            .unwrap_or_default();
        text.lines()
            .map(|l| {
                let line: serde_json::Value =
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                line["span"].clone()
            })
            .collect()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut v) = self.0.lock() {
                v.extend_from_slice(b);
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[derive(Debug)]
    struct Odd {
        _text: &'static str,
    }

    fn emit() {
        let err = std::io::Error::other("disk \"full\"\n");
        let span = tracing::info_span!(
            "request",
            otel.name = "POST /api/v1/seckill",
            method = %"POST",
            path = "/a\"b\\c\u{1}\té",
            n = 42u64,
            neg = -7i64,
            ok = true,
            ratio = 0.25f64,
            nan = f64::NAN,
            odd = ?Odd { _text: "x\"y" },
            r#type = "raw",
            bytes = &b"ab"[..],
            error = &err as &(dyn std::error::Error + 'static),
            later = tracing::field::Empty,
            empty = tracing::field::Empty,
        );
        span.in_scope(|| tracing::info!("inside"));
        span.record("later", "set after");
        span.record("client", "ignored: not a field");
        span.in_scope(|| tracing::info!("after one record"));
        span.record("empty", 1u64);
        span.record("later", "set twice");
        span.in_scope(|| tracing::info!("after more records"));
        let bare = tracing::info_span!("bare", late = tracing::field::Empty);
        bare.in_scope(|| tracing::info!("no fields yet"));
        bare.record("late", 5u64);
        bare.in_scope(|| tracing::info!("one field recorded late"));
    }

    #[test]
    fn span_fields_read_back_as_json_fields_would_write_them() {
        let ours = span_objects(SpanJsonFields, emit);
        let theirs = span_objects(JsonFields::default(), emit);
        assert_eq!(ours.len(), 5);
        assert_eq!(ours, theirs);
        assert_eq!(ours[0]["path"], "/a\"b\\c\u{1}\té");
        assert_eq!(ours[0]["odd"], "Odd { _text: \"x\\\"y\" }");
        assert_eq!(ours[0]["nan"], serde_json::Value::Null);
        assert_eq!(ours[0]["type"], "raw");
        assert_eq!(ours[2]["later"], "set twice");
        assert_eq!(ours[2]["empty"], 1);
        assert_eq!(ours[4]["late"], 5);
        assert_eq!(ours[0]["bytes"], serde_json::json!([97, 98]));
        assert_eq!(ours[0]["error"], "disk \"full\"\n");
        assert_eq!(ours[0]["ratio"], 0.25);
        assert_eq!(ours[0]["n"], 42);
        assert_eq!(ours[0]["neg"], -7);
        assert_eq!(ours[0]["ok"], true);
        assert_eq!(ours[3], serde_json::json!({"name": "bare"}));
    }

    #[test]
    fn escaping_covers_quotes_backslashes_and_control_characters() {
        let mut out = String::new();
        let _ = write_json_str(&mut out, "a\"b\\c\n\r\t\u{0}\u{1f}é");
        assert_eq!(out, r#""a\"b\\c\n\r\t\u0000\u001fé""#);
        let back: String = serde_json::from_str(&out).unwrap_or_default();
        assert_eq!(back, "a\"b\\c\n\r\t\u{0}\u{1f}é");
    }
}

//! A posted form as the page handlers read it: the pairs in the order the
//! browser sent them (a field may repeat: ticked boxes), and the redirect
//! after a write (post/redirect/get, so a reload does not post again).

use axum::response::{IntoResponse, Redirect, Response};

/// The fields of a posted form, in order.
pub type Pairs = Vec<(String, String)>;

/// The first value of `name`, or "" when absent.
pub fn value<'a>(pairs: &'a Pairs, name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// Every value of `name` (ticked boxes), in order.
pub fn values<'a>(pairs: &'a Pairs, name: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(key, _)| key == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// `name` trimmed, or `None` when empty: the API's optional field.
pub fn optional(pairs: &Pairs, name: &str) -> Option<String> {
    let text = value(pairs, name).trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// Back to `page` (which may carry a query already) with `notice` shown.
pub fn redirect_with_notice(page: &str, notice: &str) -> Response {
    let joint = if page.contains('?') { '&' } else { '?' };
    Redirect::to(&format!(
        "{page}{joint}notice={}",
        crate::access::guard::url_encode(notice)
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_fields_are_all_kept_and_blank_optional_fields_are_absent() {
        let pairs: Pairs = vec![
            ("volunteer".into(), "001".into()),
            ("volunteer".into(), "002".into()),
            ("team".into(), "  ".into()),
            ("name".into(), " 宣讲 ".into()),
        ];
        assert_eq!(values(&pairs, "volunteer"), ["001", "002"]);
        assert_eq!(value(&pairs, "volunteer"), "001");
        assert_eq!(value(&pairs, "missing"), "");
        assert_eq!(optional(&pairs, "team"), None);
        assert_eq!(optional(&pairs, "name").as_deref(), Some("宣讲"));
        let to = redirect_with_notice("/web/activities?month=2026-12", "已删除");
        let location = to.headers()["location"].to_str().unwrap();
        assert!(location.starts_with("/web/activities?month=2026-12&notice="));
    }
}

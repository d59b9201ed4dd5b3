//! Every `[[static]]` table → [`StaticSettings`]: a URL prefix, the folder
//! it is served from, and its `Cache-Control`.
//!
//! The `url` and header are checked here with their lines; whether a table
//! without `dir` has a launcher's folder to take is only known once the
//! launchers have run (`config::check_mappings`).

use toml::Spanned;

use super::section::Section;
use crate::config::ConfigError;
use crate::config::StaticSettings;
use crate::config::parse::{parse_cache_control, parse_static_url};
use crate::config::raw::RawStatic;
use crate::config::source::Source;

/// The tables in file order; each `url` at most once. A `dir` that is not
/// a folder (yet) is a warning, as the document root's is.
pub(super) fn convert_statics(
    raw: Vec<Spanned<RawStatic>>,
    src: &Source<'_>,
    warnings: &mut Vec<String>,
) -> Result<Vec<StaticSettings>, ConfigError> {
    let mut statics: Vec<StaticSettings> = Vec::with_capacity(raw.len());
    for (i, table) in raw.into_iter().enumerate() {
        let span = table.span();
        let table = table.into_inner();
        let Some(url) = &table.url else {
            let t = Section::new(src, format!("static #{}: ", i + 1));
            return Err(t.error(
                Some(span),
                "url",
                "missing key `url` (the URL prefix, e.g. \"/media/\")",
            ));
        };
        let url_text = parse_static_url(url.get_ref()).map_err(|m| {
            Section::new(src, format!("static #{}: ", i + 1)).error(Some(url.span()), "url", m)
        })?;
        let t = Section::new(src, format!("static \"{url_text}\": "));
        if statics.iter().any(|s| s.url == url_text) {
            return Err(t.error(
                Some(url.span()),
                "url",
                "given twice (one [[static]] table per URL prefix)",
            ));
        }
        let dir = table.dir.as_ref().map(|d| src.path(d.get_ref()));
        if let Some(dir) = &dir
            && !dir.is_dir()
        {
            warnings.push(format!(
                "static \"{url_text}\": dir {} is not a directory (requests under {url_text} get 404 until it is)",
                dir.display()
            ));
        }
        let cache_control =
            t.read_or(table.cache_control.as_ref(), "cache_control", None, |v| {
                parse_cache_control(v).map(Some)
            })?;
        statics.push(StaticSettings {
            url: url_text,
            dir,
            cache_control,
        });
    }
    Ok(statics)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::PathBuf;

    use crate::config::test_support::load;

    #[test]
    fn static_tables() {
        let c = load(
            "[[static]]\nurl = \"/wp-content\"\ndir = \"/var/lib/wordpress/wp-content\"\ncache_control = \"public, max-age=3600\"\n[[static]]\nurl = \"/media/\"\ndir = \"media\"\n",
        )
        .unwrap();
        assert_eq!(c.static_folders.len(), 2);
        assert_eq!(c.static_folders[0].url, "/wp-content/");
        assert_eq!(
            c.static_folders[0].cache_control.as_deref(),
            Some("public, max-age=3600")
        );
        // Relative to the config's folder.
        assert_eq!(
            c.static_folders[1].dir,
            Some(PathBuf::from("/etc/fg/media"))
        );
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("static \"/media/\": dir"))
        );
    }

    #[test]
    fn static_errors_name_the_table_key_and_line() {
        let e = load("[[static]]\ndir = \"/x\"\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("static #1: url"));
        let e = load("[[static]]\nurl = \"/a/../b/\"\ndir = \"/x\"\n").unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(2), Some("static #1: url"))
        );
        let e = load("[[static]]\nurl = \"/m/\"\ndir = \"/x\"\ncache_control = \"a\\u0001\"\n")
            .unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(4), Some("static \"/m/\": cache_control"))
        );
        let e = load(
            "[[static]]\nurl = \"/m\"\ndir = \"/x\"\n[[static]]\nurl = \"/m/\"\ndir = \"/y\"\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(5));
        assert!(e.message.contains("given twice"), "{e}");
        let e = load("[[static]]\nurl = \"/m/\"\nalias = \"/x\"\n").unwrap_err();
        assert!(e.message.contains("alias"), "{e}");
    }
}

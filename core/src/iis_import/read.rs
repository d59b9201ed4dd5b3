//! Reading IIS configuration files into the few things the import maps:
//! `<fastCgi><application>` elements, FastCGI `<handlers>` entries and
//! `<appSettings>`.
//!
//! roxmltree parses the whole file (a web.config is small) and keeps byte
//! positions, so every element read here carries the line it came from; the
//! generated comments and the errors name it. Elements are searched
//! anywhere in the tree because applicationHost.config nests sections in
//! `<location>` elements.

use std::path::Path;

use super::ImportError;

/// One `<fastCgi><application>`: its attributes in file order, and its
/// `<environmentVariables>`.
#[derive(Debug, Default, Clone)]
pub struct FastCgiApp {
    pub line: u32,
    pub attrs: Vec<(String, String)>,
    pub env: Vec<(String, String)>,
}

impl FastCgiApp {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// What a handler's `scriptProcessor` names it by: `fullPath|arguments`.
    pub fn script_processor(&self) -> String {
        let full = self.attr("fullPath").unwrap_or_default();
        match self.attr("arguments") {
            Some(args) if !args.is_empty() => format!("{full}|{args}"),
            _ => full.to_string(),
        }
    }
}

/// One `<handlers><add>`: its attributes in file order.
#[derive(Debug, Default, Clone)]
pub struct Handler {
    pub file: String,
    pub line: u32,
    pub attrs: Vec<(String, String)>,
}

impl Handler {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether IIS runs it through the FastCGI module.
    pub fn is_fastcgi(&self) -> bool {
        self.attr("modules")
            .is_some_and(|m| m.split(',').any(|m| m.trim() == "FastCgiModule"))
    }
}

/// What one file holds that the import maps.
#[derive(Debug, Default)]
pub struct IisFile {
    pub apps: Vec<FastCgiApp>,
    /// The handler list after this file's `<clear/>` and `<remove>`.
    pub handlers: Vec<Handler>,
    /// Whether a `<clear/>` dropped the handlers inherited from the parent file.
    pub cleared: bool,
    /// Names this file `<remove>`s from the handlers it inherits.
    pub removed: Vec<String>,
    pub app_settings: Vec<(String, String, u32)>,
}

/// Reads and parses one file; unreadable or malformed XML is an error
/// naming the file (and the line, for XML errors).
pub fn read_file(path: &Path) -> Result<IisFile, ImportError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ImportError {
        file: name.clone(),
        line: None,
        message: format!("cannot read the file: {e}"),
    })?;
    parse(&name, &text)
}

/// Parses the text of one file named `file`.
pub fn parse(file: &str, text: &str) -> Result<IisFile, ImportError> {
    // IIS tools write web.config with a byte-order mark; roxmltree wants text.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let doc = roxmltree::Document::parse(text).map_err(|e| ImportError {
        file: file.to_string(),
        line: Some(e.pos().row),
        message: format!("invalid XML: {e}"),
    })?;
    let line_of = |node: roxmltree::Node| doc.text_pos_at(node.range().start).row;
    let mut out = IisFile::default();
    for node in doc.descendants().filter(|n| n.is_element()) {
        match node.tag_name().name() {
            "fastCgi" => {
                for app in elements(node, "application") {
                    out.apps.push(FastCgiApp {
                        line: line_of(app),
                        attrs: attributes(app),
                        env: environment(app),
                    });
                }
            }
            "handlers" => {
                for entry in node.children().filter(|n| n.is_element()) {
                    match entry.tag_name().name() {
                        "clear" => {
                            out.handlers.clear();
                            out.cleared = true;
                        }
                        "remove" => {
                            let gone = entry.attribute("name").unwrap_or_default();
                            out.handlers.retain(|h| h.attr("name") != Some(gone));
                            out.removed.push(gone.to_string());
                        }
                        "add" => out.handlers.push(Handler {
                            file: file.to_string(),
                            line: line_of(entry),
                            attrs: attributes(entry),
                        }),
                        _ => {}
                    }
                }
            }
            "appSettings" => {
                for add in elements(node, "add") {
                    let key = add.attribute("key").unwrap_or_default();
                    let value = add.attribute("value").unwrap_or_default();
                    out.app_settings
                        .push((key.to_string(), value.to_string(), line_of(add)));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn elements<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    name: &'static str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    node.children()
        .filter(move |n| n.is_element() && n.tag_name().name() == name)
}

fn attributes(node: roxmltree::Node) -> Vec<(String, String)> {
    node.attributes()
        .map(|a| (a.name().to_string(), a.value().to_string()))
        .collect()
}

fn environment(app: roxmltree::Node) -> Vec<(String, String)> {
    elements(app, "environmentVariables")
        .flat_map(|vars| elements(vars, "environmentVariable"))
        .map(|v| {
            (
                v.attribute("name").unwrap_or_default().to_string(),
                v.attribute("value").unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_applications_handlers_and_settings_with_lines() {
        let text = "<configuration>\n<system.webServer>\n<fastCgi>\n\
            <application fullPath=\"C:\\PHP\\php-cgi.exe\" maxInstances=\"8\">\n\
            <environmentVariables><environmentVariable name=\"A\" value=\"1\"/></environmentVariables>\n\
            </application>\n</fastCgi>\n<handlers>\n<add name=\"old\" path=\"*.x\"/>\n<clear/>\n\
            <add name=\"PHP\" path=\"*.php\" modules=\"FastCgiModule\"/>\n</handlers>\n\
            </system.webServer>\n<appSettings><add key=\"K\" value=\"V\"/></appSettings>\n</configuration>";
        let f = parse("web.config", text).unwrap();
        assert_eq!(f.apps.len(), 1);
        assert_eq!(f.apps[0].line, 4);
        assert_eq!(f.apps[0].attr("maxInstances"), Some("8"));
        assert_eq!(f.apps[0].env, vec![("A".into(), "1".into())]);
        assert_eq!(f.handlers.len(), 1);
        assert!(f.cleared);
        assert_eq!(f.handlers[0].line, 11);
        assert!(f.handlers[0].is_fastcgi());
        assert_eq!(f.app_settings, vec![("K".into(), "V".into(), 14)]);
    }

    #[test]
    fn malformed_xml_names_file_and_line() {
        let e = parse(
            "web.config",
            "<configuration>\n<handlers>\n</configuration>",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(
            e.to_string().starts_with("web.config:3: invalid XML"),
            "{e}"
        );
    }

    #[test]
    fn script_processor_joins_path_and_arguments() {
        let app = FastCgiApp {
            attrs: vec![
                ("fullPath".into(), "C:\\py\\python.exe".into()),
                ("arguments".into(), "C:\\py\\wfastcgi.py".into()),
            ],
            ..Default::default()
        };
        assert_eq!(
            app.script_processor(),
            "C:\\py\\python.exe|C:\\py\\wfastcgi.py"
        );
    }
}

//! Prints an hcl-rs body the way `terraform fmt` lays it out.
//!
//! hcl-rs's formatter writes valid HCL in Terraform's indentation, but three things differ from
//! `terraform fmt` (hclwrite's `format.go`): it does not align the `=` of consecutive single-line
//! attributes, it writes an empty block as `name {  }` where Terraform writes `name {}`, and it
//! writes a single-line `for` object as `{for ...}` where Terraform writes `{ for ... }`. This
//! module applies exactly those rules to the formatter's output, line by line, with a small lexer
//! that knows where strings and template interpolations begin and end, so that an `=` or a brace
//! inside a string is never touched.
//!
//! The alignment rule is hclwrite's: a line holds an assignment when its first `=` token is
//! followed by a balanced expression (a line that opens a multi-line object or list does not
//! count); a run of consecutive assignment lines forms a chain, and every `=` in a chain is moved
//! one column past the longest left-hand side. Any other line, blank lines included, ends a chain.

use std::borrow::Cow;

use hcl::Body;
use hcl::format::{Format, Formatter};

/// Formats a body as Terraform writes it: two-space indentation, compact lists, identifier keys
/// where possible, aligned `=`, `{}` for empty blocks and spaces inside single-line braces.
pub fn format_body(body: &Body) -> Result<String, hcl::Error> {
    let mut buffer = Vec::new();
    let mut formatter = Formatter::builder().compact_arrays(true).prefer_ident_keys(true).build(&mut buffer);
    body.format(&mut formatter)?;
    let text = String::from_utf8(buffer).map_err(|error| hcl::Error::Utf8(error.utf8_error()))?;
    Ok(canonical_layout(&text))
}

/// Applies `terraform fmt`'s alignment and brace rules to formatter output.
pub(super) fn canonical_layout(text: &str) -> String {
    // One stack of lexer modes serves every line, rather than an allocation per line.
    let mut modes = Vec::new();
    let lines: Vec<Line<'_>> = text.split('\n').map(|line| Line::scan(line, &mut modes)).collect();
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut chain_start = 0;
    for (position, line) in lines.iter().enumerate() {
        if line.assignment.is_some() {
            continue;
        }
        write_chain(&lines[chain_start..position], &mut out);
        out.push_str(&line.text);
        if position + 1 < lines.len() {
            out.push('\n');
        }
        chain_start = position + 1;
    }
    write_chain(&lines[chain_start..], &mut out);
    if !text.ends_with('\n') && out.ends_with('\n') {
        out.pop();
    }
    out
}

/// Writes a run of assignment lines (each followed by a newline) with every `=` one column past
/// the longest left-hand side.
fn write_chain(chain: &[Line<'_>], out: &mut String) {
    let widest = chain.iter().filter_map(|line| line.assignment).map(|at| at.lead_width).max().unwrap_or(0);
    for line in chain {
        line.write_aligned(widest, out);
        out.push('\n');
    }
}

/// One line of formatter output, with Terraform's brace spacing applied, and where its assignment is.
struct Line<'a> {
    text: Cow<'a, str>,
    assignment: Option<Assignment>,
}

#[derive(Clone, Copy)]
struct Assignment {
    /// Byte offset of the `=`.
    equals: usize,
    /// Columns taken by the indentation and the key, without the spaces before `=`.
    lead_width: usize,
}

/// Where the lexer is: in an expression, inside `{ }` braces, in a quoted string, or in a
/// `${`/`%{` template sequence.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Expression,
    Brace,
    String,
    Interpolation,
}

impl<'a> Line<'a> {
    /// Copies a line, giving braces Terraform's spacing on the way (`{}` when empty, otherwise one
    /// space inside each brace of a single-line object or `for`), and finds its assignment.
    fn scan(line: &'a str, modes: &mut Vec<Mode>) -> Line<'a> {
        let bytes = line.as_bytes();
        // The text is copied only where a brace needs respacing; `copied` is how far into `line`
        // `text` has caught up.
        let mut text = String::new();
        let mut copied = 0;
        modes.clear();
        modes.push(Mode::Expression);
        let mut first_equals = None;
        let mut balance_after_equals: i64 = 0;
        let mut position = 0;
        while position < bytes.len() {
            let byte = bytes[position];
            let mode = modes.last().copied().unwrap_or(Mode::Expression);
            let mut bracket_change = 0;
            let mut consumed = 1;
            match mode {
                Mode::String => match byte {
                    b'\\' => consumed = 2,
                    b'"' => {
                        modes.pop();
                    }
                    b'$' | b'%'
                        if bytes.get(position + 1) == Some(&b'{')
                        // `$${` and `%%{` are escapes for a literal `${` / `%{`.
                        && (position == 0 || bytes[position - 1] != byte) =>
                    {
                        modes.push(Mode::Interpolation);
                        bracket_change = 1;
                        consumed = 2;
                    }
                    _ => {}
                },
                Mode::Expression | Mode::Brace | Mode::Interpolation => match byte {
                    b'"' => modes.push(Mode::String),
                    b'{' => {
                        let rest = &line[position + 1..];
                        let inner = rest.trim_start_matches(' ');
                        if inner.starts_with('}') {
                            // An empty block or object: `{}`.
                            text.push_str(&line[copied..position]);
                            text.push_str("{}");
                            position += 1 + (rest.len() - inner.len()) + 1;
                            copied = position;
                            continue;
                        }
                        modes.push(Mode::Brace);
                        bracket_change = 1;
                        if !rest.is_empty() && !rest.starts_with(' ') {
                            text.push_str(&line[copied..=position]);
                            text.push(' ');
                            copied = position + 1;
                        }
                    }
                    b'[' | b'(' => bracket_change = 1,
                    b']' | b')' => bracket_change = -1,
                    b'}' => {
                        let before = &line[..position];
                        if mode == Mode::Brace && !before.ends_with(' ') && !before.trim_start().is_empty() {
                            text.push_str(&line[copied..position]);
                            text.push(' ');
                            copied = position;
                        }
                        if modes.len() > 1 {
                            modes.pop();
                        }
                        bracket_change = -1;
                    }
                    b'=' if first_equals.is_none() && is_assignment_equals(bytes, position) => {
                        first_equals = Some(text.len() + position - copied);
                    }
                    _ => {}
                },
            }
            if first_equals.is_some() {
                balance_after_equals += bracket_change;
            }
            position = (position + consumed).min(bytes.len());
        }
        let text = if copied == 0 {
            Cow::Borrowed(line)
        } else {
            text.push_str(&line[copied..]);
            Cow::Owned(text)
        };
        let assignment = first_equals.filter(|_| balance_after_equals == 0).and_then(|equals| {
            let lead = text[..equals].trim_end();
            (!lead.trim_start().is_empty()).then(|| Assignment { equals, lead_width: lead.chars().count() })
        });
        Line { text, assignment }
    }

    fn write_aligned(&self, widest: usize, out: &mut String) {
        match self.assignment {
            Some(Assignment { equals, lead_width }) => {
                out.push_str(self.text[..equals].trim_end());
                out.extend(std::iter::repeat_n(' ', widest.saturating_sub(lead_width) + 1));
                out.push_str(&self.text[equals..]);
            }
            None => out.push_str(&self.text),
        }
    }
}

/// An `=` that is an assignment, not part of `==`, `!=`, `<=`, `>=` or `=>`.
fn is_assignment_equals(bytes: &[u8], position: usize) -> bool {
    let before = position.checked_sub(1).and_then(|index| bytes.get(index)).copied();
    let after = bytes.get(position + 1).copied();
    !matches!(before, Some(b'=' | b'!' | b'<' | b'>')) && !matches!(after, Some(b'=' | b'>'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_consecutive_single_line_attributes_like_terraform_fmt() {
        let input = "resource \"a\" \"b\" {\n  name = \"x\"\n  role_arn = \"y\"\n  tags = {\n    Name = \"x\"\n    \"kubernetes.io/role\" = \"y\"\n  }\n  subnets = [\"a\", \"b\"]\n  count = var.x == null ? 0 : 1\n\n  vpc {\n    a = 1\n  }\n\n  features {  }\n}\n";
        let expected = "resource \"a\" \"b\" {\n  name     = \"x\"\n  role_arn = \"y\"\n  tags = {\n    Name                 = \"x\"\n    \"kubernetes.io/role\" = \"y\"\n  }\n  subnets = [\"a\", \"b\"]\n  count   = var.x == null ? 0 : 1\n\n  vpc {\n    a = 1\n  }\n\n  features {}\n}\n";
        assert_eq!(canonical_layout(input), expected);
    }

    #[test]
    fn leaves_equals_and_braces_inside_strings_alone() {
        let input = "a = \"x = {  }\"\nbbb = \"${jsonencode({ k = 1 })} == 2\"\nc = {\n}\n";
        let expected = "a   = \"x = {  }\"\nbbb = \"${jsonencode({ k = 1 })} == 2\"\nc = {\n}\n";
        assert_eq!(canonical_layout(input), expected);
    }

    #[test]
    fn spaces_single_line_braces_like_terraform_fmt() {
        let input = "a = {for x in y : x => x}\nb = \"${x}\"\nc = f({ k = 1 })\nd = {  }\n";
        let expected = "a = { for x in y : x => x }\nb = \"${x}\"\nc = f({ k = 1 })\nd = {}\n";
        assert_eq!(canonical_layout(input), expected);
    }

    #[test]
    fn a_line_opening_a_multi_line_value_breaks_the_chain() {
        let input = "x = 1\npolicy = jsonencode({\n  a = 1\n})\nlonger_name = 2\ny = 3\n";
        let expected = "x = 1\npolicy = jsonencode({\n  a = 1\n})\nlonger_name = 2\ny           = 3\n";
        assert_eq!(canonical_layout(input), expected);
    }

    #[test]
    fn formats_a_built_body() {
        let body = Body::builder()
            .add_block(
                hcl::Block::builder("provider")
                    .add_label("azurerm")
                    .add_attribute(("subscription_id", "x"))
                    .add_block(hcl::Block::builder("features").build())
                    .build(),
            )
            .build();
        let text = format_body(&body).expect("a plain body formats");
        assert_eq!(text, "provider \"azurerm\" {\n  subscription_id = \"x\"\n\n  features {}\n}\n");
    }
}

//! Shell-like word splitting for one kickstart line, as pykickstart does with
//! `shlex.split(line, comments=True)`, but keeping each word's column for diagnostics.

/// One word of a command line, unquoted, with the 1-based column where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub column: usize,
}

/// A quote was opened and never closed; `column` is where it opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    pub column: usize,
    pub message: String,
}

/// Splits `line` into words. Double quotes allow `\"`, `\\`, `\$` and `` \` `` escapes,
/// single quotes are literal, a backslash outside quotes escapes the next character and
/// a `#` outside quotes begins a comment, even inside a word (`keyboard us# x` is `us`),
/// as Python's shlex does.
pub fn split_words(line: &str) -> Result<Vec<Word>, LexError> {
    let mut words = Vec::new();
    let mut current: Option<Word> = None;
    let mut chars = line.chars().zip(1usize..).peekable();
    while let Some((c, col)) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = current.take() {
                    words.push(w);
                }
            }
            '#' => break,
            '\'' => {
                let word = current.get_or_insert_with(|| Word { text: String::new(), column: col });
                loop {
                    match chars.next() {
                        Some(('\'', _)) => break,
                        Some((ch, _)) => word.text.push(ch),
                        None => return Err(unbalanced('\'', col)),
                    }
                }
            }
            '"' => {
                let word = current.get_or_insert_with(|| Word { text: String::new(), column: col });
                loop {
                    match chars.next() {
                        Some(('"', _)) => break,
                        Some(('\\', _)) => match chars.peek() {
                            Some(&(next @ ('"' | '\\' | '$' | '`'), _)) => {
                                word.text.push(next);
                                chars.next();
                            }
                            _ => word.text.push('\\'),
                        },
                        Some((ch, _)) => word.text.push(ch),
                        None => return Err(unbalanced('"', col)),
                    }
                }
            }
            '\\' => {
                let word = current.get_or_insert_with(|| Word { text: String::new(), column: col });
                if let Some((next, _)) = chars.next() {
                    word.text.push(next);
                }
            }
            other => current.get_or_insert_with(|| Word { text: String::new(), column: col }).text.push(other),
        }
    }
    if let Some(w) = current.take() {
        words.push(w);
    }
    Ok(words)
}

fn unbalanced(quote: char, column: usize) -> LexError {
    LexError { column, message: format!("unbalanced quote: {quote} opened here is never closed") }
}

/// Quotes `text` so that [`split_words`] gives it back as one word.
pub fn quote(text: &str) -> String {
    let plain = !text.is_empty() && text.chars().all(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | '\\' | '#'));
    if plain {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line: &str) -> Vec<String> {
        split_words(line).unwrap().into_iter().map(|w| w.text).collect()
    }

    #[test]
    fn splits_quotes_escapes_and_comments() {
        assert_eq!(texts(r#"repo --name="a b" --x='c d' e\ f # tail"#), vec!["repo", "--name=a b", "--x=c d", "e f"]);
        assert_eq!(texts(r#"a "x\"y\n""#), vec!["a", "x\"y\\n"]);
        assert_eq!(texts("keyboard us# Root password"), vec!["keyboard", "us"]);
        assert_eq!(texts("a 'x#y'"), vec!["a", "x#y"]);
        let w = split_words("  part  /").unwrap();
        assert_eq!((w[0].column, w[1].column), (3, 9));
    }

    #[test]
    fn unbalanced_quotes_are_errors_at_the_quote() {
        assert_eq!(split_words("a \"b").unwrap_err().column, 3);
        assert_eq!(split_words("a b'").unwrap_err().column, 4);
    }

    #[test]
    fn quote_round_trips() {
        for s in ["plain", "a b", "", "x\"y$z", "#c", "u#v", "it's"] {
            assert_eq!(texts(&quote(s)), vec![s.to_owned()]);
        }
    }
}

//! An element path kept as a stack while a JSON tree is walked, and written out
//! (`Patient.name[0].given`) only when something is reported there.

/// Where the check is, kept as a stack and written out only for an issue (a resource of a
/// few hundred elements is checked without building a path string for each).
pub(crate) struct Path<'a> {
    root: &'a str,
    steps: Vec<Step<'a>>,
}

#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

impl<'a> Path<'a> {
    /// A path at `root` (`Patient`, `Bundle.entry[2].resource`).
    pub(crate) fn new(root: &'a str) -> Path<'a> {
        Path {
            root,
            steps: Vec::with_capacity(16),
        }
    }

    pub(crate) fn key(&mut self, key: &'a str) {
        self.steps.push(Step::Key(key));
    }

    pub(crate) fn index(&mut self, i: usize) {
        self.steps.push(Step::Index(i));
    }

    pub(crate) fn pop(&mut self) {
        self.steps.pop();
    }

    /// The path as FHIRPath-like text (`Patient.name[0].given`), with `tail` appended.
    pub(crate) fn text(&self, tail: &str) -> String {
        let mut out = self.root.to_owned();
        for step in &self.steps {
            match step {
                Step::Key(k) => {
                    out.push('.');
                    out.push_str(k);
                }
                Step::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        if !tail.is_empty() {
            out.push('.');
            out.push_str(tail);
        }
        out
    }
}

//! Search index entries: what a resource is found by.
//!
//! Entries are extracted at write time by the mappings and persisted by the store, one table
//! per kind. Dates are ranges of microseconds since the Unix epoch, both ends inclusive.

/// One search index entry of a resource. Ordered (by kind, then field by field) so a list of
/// entries sorts and deduplicates cheaply.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum IndexEntry {
    /// A coded value: `system|code`.
    Token {
        /// Search parameter name.
        param: String,
        /// Code system, if known.
        system: Option<String>,
        /// The code (or identifier value).
        code: String,
    },
    /// A text value.
    String {
        /// Search parameter name.
        param: String,
        /// Lower case, accents folded: what `:contains` and prefix matching compare.
        normalized: String,
        /// The value as written: what `:exact` compares.
        exact: String,
    },
    /// A time range.
    Date {
        /// Search parameter name.
        param: String,
        /// Start, µs since the epoch, inclusive.
        low: i64,
        /// End, µs since the epoch, inclusive.
        high: i64,
    },
    /// A reference to another entity.
    Reference {
        /// Search parameter name.
        param: String,
        /// Target type.
        target_type: String,
        /// Target id.
        target_id: String,
    },
    /// A quantity or number: the range its written precision implies (`5.4` is 5.35 to
    /// 5.45), as exact decimal text, with its unit (numbers have none).
    Quantity {
        /// Search parameter name.
        param: String,
        /// The unit's system (e.g. `http://unitsofmeasure.org`), if any.
        system: Option<String>,
        /// The unit's code, else its display unit, if any.
        code: Option<String>,
        /// Lower bound, decimal text, inclusive.
        low: String,
        /// Upper bound, decimal text, inclusive.
        high: String,
    },
}

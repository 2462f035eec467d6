//! What a warehouse holds, as `Warehouse::describe` reads it: tables, columns, keys, comments
//! and the few distinct values of low-cardinality text columns.
use serde::{Deserialize, Serialize};

/// Broad type of a warehouse column, enough for the semantic model and the LLM's schema context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    Integer,
    Decimal,
    Text,
    Date,
    Timestamp,
    Boolean,
    #[default]
    Other,
}

/// How many distinct values a column holds, as far as a breakdown is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cardinality {
    /// Few values (a segment, a status): a breakdown and a filter.
    #[default]
    Low,
    /// Many values (names, phones, comments): a label for `top N` and an exact filter, not a
    /// breakdown to offer.
    High,
}

impl Cardinality {
    pub fn is_low(&self) -> bool {
        *self == Cardinality::Low
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ColumnSchema {
    pub name: String,
    /// The engine's own type name (`numeric(12,2)`, `TEXT`).
    pub data_type: String,
    pub kind: ColumnKind,
    pub comment: Option<String>,
    /// Every distinct value, when the column is text with only a few of them (sampled).
    pub values: Vec<String>,
}

/// `columns` of a table point at `references` of `table`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub columns: Vec<String>,
    pub table: String,
    pub references: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TableSchema {
    /// As queries name it: `orders`, or `sales.orders` outside Postgres' `public` schema.
    pub name: String,
    pub columns: Vec<ColumnSchema>,
    pub comment: Option<String>,
    pub primary_key: Vec<String>,
    pub foreign_keys: Vec<ForeignKey>,
}

impl TableSchema {
    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn column_mut(&mut self, name: &str) -> Option<&mut ColumnSchema> {
        self.columns.iter_mut().find(|c| c.name == name)
    }

    /// The single-column foreign key starting at `column`, if any.
    pub fn foreign_key_of(&self, column: &str) -> Option<&ForeignKey> {
        self.foreign_keys
            .iter()
            .find(|fk| fk.columns.len() == 1 && fk.columns.iter().any(|c| c == column))
    }
}

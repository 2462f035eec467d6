//! The pure domain every stage shares: which thread, what was said, what was proposed and
//! answered. No I/O, no actors, no Slack or database clients: each type is plain data with the
//! rules that keep it valid, so any stage (and any test) can build one.
mod command;
mod cost;
mod error_code;
mod ids;
mod origin;
mod proposed_query;
mod reply;
mod report;
mod result;
mod schedule;
mod schema;
mod structured_query;
mod thread_key;
mod thread_state;
mod turn;

pub use command::{Command, ScheduleCommand};
pub use cost::{bytes_text, CostEstimate, CostLimit, DailyBudgets};
pub use error_code::{ErrorCode, ErrorDescription};
pub use ids::{ChannelId, MessageTs, QueryId, TeamId, UserId};
pub use origin::Origin;
pub use proposed_query::{LlmUsage, PendingClarification, ProposedQuery};
pub use reply::{Answer, Reply, UserError};
pub use report::{
    first_number, plan_fire_times, versus_day, AlertSpec, ExecutionStatus, FirePlan, ReportState, ResultDiff,
    ScheduledReport, ValueChange, MAX_NAMED_ROWS, MISSED_AFTER,
};
pub use result::{infer_column_format, is_iso_date, Column, ColumnFormat, QueryResult, Value};
pub use schedule::{
    parse_alert, parse_schedule, Alert, AlertAction, AlertState, Attachment, CatchUp, Condition, DeliveryOptions,
    Destination, Schedule, ScheduleError, PREVIOUS_RUN,
};
pub use schema::{Cardinality, ColumnKind, ColumnSchema, ForeignKey, TableSchema};
pub use structured_query::{Filter, Grain, Sort, SortKey, StructuredQuery, TimeRange, TopN};
pub use thread_key::ThreadKey;
pub use thread_state::{InFlight, QueryVersion, ThreadState, UndoError, MAX_TURNS, MAX_VERSIONS};
pub use turn::Turn;

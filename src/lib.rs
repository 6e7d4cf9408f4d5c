//! pgha: one binary for PostgreSQL high availability (embedded Raft DCS, supervisor, edge, ctl).

//! Rebuilds the crate when a migration changes: `refinery::embed_migrations!` reads
//! `migrations/` at compile time, and cargo does not otherwise know about those files.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}

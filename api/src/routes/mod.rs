//! HTTP routes, one module per resource. [`configure`] is the one place routes are registered;
//! the OpenAPI document is collected from the same calls.

pub mod campaigns;
pub mod cases;
pub mod contact_cards;
pub mod health;
pub mod integrity;
pub mod ledger;
pub mod meetings;
pub mod records;
pub mod reference;
pub mod surveys;
pub mod visits;

/// Registers every documented route.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(
        utoipa_actix_web::scope("/api/v1")
            .configure(cases::configure)
            .configure(integrity::configure)
            .configure(ledger::configure)
            .configure(reference::configure)
            .configure(campaigns::configure)
            .configure(meetings::configure)
            .configure(contact_cards::configure)
            .configure(visits::configure)
            .configure(surveys::configure)
            .configure(records::configure),
    )
    .configure(health::configure);
}

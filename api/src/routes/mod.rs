//! HTTP routes, one module per resource. [`configure`] is the one place routes are registered;
//! the OpenAPI document is collected from the same calls.

pub mod analysis;
pub mod campaigns;
pub mod cases;
pub mod contact_cards;
pub mod health;
pub mod integrations;
pub mod integrity;
pub mod ledger;
pub mod meetings;
pub mod open311;
pub mod public;
pub mod records;
pub mod reference;
pub mod reports;
pub mod supervision;
pub mod surveys;
pub mod visits;

/// Registers every documented route.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    // The public side first: the `/api/v1` scope would otherwise take its paths (and answer
    // 404 for them). Both public scopes are rate-limited per client address.
    cfg.service(
        utoipa_actix_web::scope("/api/v1/public")
            .wrap(actix_web::middleware::from_fn(crate::ratelimit::limit))
            .configure(public::configure),
    )
    .service(
        utoipa_actix_web::scope("/open311/v2")
            .wrap(actix_web::middleware::from_fn(crate::ratelimit::limit))
            .configure(open311::configure),
    )
    .service(
        utoipa_actix_web::scope("/api/v1")
            .configure(cases::configure)
            .configure(integrity::configure)
            .configure(ledger::configure)
            .configure(analysis::configure)
            .configure(supervision::configure)
            .configure(reports::configure)
            .configure(reference::configure)
            .configure(campaigns::configure)
            .configure(meetings::configure)
            .configure(contact_cards::configure)
            .configure(visits::configure)
            .configure(surveys::configure)
            .configure(records::configure)
            .configure(integrations::configure),
    )
    .configure(health::configure);
}

output "service_url" {
  description = "The handler's URL (internal ingress: reached by Pub/Sub and Cloud Scheduler)."
  value       = google_cloud_run_v2_service.handler.uri
}

output "state_bucket" {
  value = google_storage_bucket.state.name
}

output "audit_bucket" {
  value = google_storage_bucket.audit.name
}

output "access_logs_bucket" {
  value = google_storage_bucket.access_logs.name
}

output "alerts_topic" {
  value = google_pubsub_topic.alerts.id
}

output "dead_letter_topic" {
  value = google_pubsub_topic.dead_letter.id
}

output "handler_service_account" {
  value = google_service_account.handler.email
}

output "invoker_service_account" {
  value = google_service_account.invoker.email
}

output "remediation_role" {
  value = google_project_iam_custom_role.remediation.name
}

# Escher Extend (acme-escher): the handler that handles alerts and runs the nightly scan, its stores, secrets, notifications and triggers.
# Rendered by escher-provision: a root module for Infrastructure Manager (Terraform 1.5, no
# backend block: Infrastructure Manager keeps the state). Values come from terraform.tfvars.

terraform {
  required_version = ">= 1.3, <= 1.5.7"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 8.7, < 9.0"
    }
  }
}

provider "google" {
  project = var.project
  region  = var.region
}

data "google_project" "this" {
  project_id = var.project
}

locals {
  state_bucket       = "acme-escher-state"
  audit_bucket       = "acme-escher-audit"
  access_logs_bucket = "acme-escher-access-logs"
  # Push subscriptions and the scheduler job sign their tokens for this audience, and the
  # service accepts only it: a fixed string, so the service need not know its own URL.
  oidc_audience = "acme-escher-acme-prod-1234"
  # Google's service agents, which deliver on the deployment's behalf.
  pubsub_agent     = "service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  monitoring_agent = "service-${data.google_project.this.number}@gcp-sa-monitoring-notification.iam.gserviceaccount.com"
}

# The APIs the deployment uses; left enabled on destroy, since other workloads may use them.
resource "google_project_service" "run" {
  project            = var.project
  service            = "run.googleapis.com"
  disable_on_destroy = false
}

resource "google_project_service" "pubsub" {
  project            = var.project
  service            = "pubsub.googleapis.com"
  disable_on_destroy = false
}

resource "google_project_service" "secretmanager" {
  project            = var.project
  service            = "secretmanager.googleapis.com"
  disable_on_destroy = false
}

resource "google_project_service" "cloudscheduler" {
  project            = var.project
  service            = "cloudscheduler.googleapis.com"
  disable_on_destroy = false
}

resource "google_project_service" "logging" {
  project            = var.project
  service            = "logging.googleapis.com"
  disable_on_destroy = false
}

resource "google_project_service" "monitoring" {
  project            = var.project
  service            = "monitoring.googleapis.com"
  disable_on_destroy = false
}

resource "google_project_service" "iam" {
  project            = var.project
  service            = "iam.googleapis.com"
  disable_on_destroy = false
}

resource "google_project_service" "storage" {
  project            = var.project
  service            = "storage.googleapis.com"
  disable_on_destroy = false
}

resource "google_project_service" "securitycenter" {
  project            = var.project
  service            = "securitycenter.googleapis.com"
  disable_on_destroy = false
}

# Buckets: the handler's state (with approvals and morning reports), the audit trail under a
# retention policy, and the access logs of both.
resource "google_storage_bucket" "access_logs" {
  #checkov:skip=CKV_GCP_62:this bucket receives the other buckets' access logs; logging its own access would log each log delivery
  name                        = local.access_logs_bucket
  project                     = var.project
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  versioning {
    enabled = true
  }
  lifecycle_rule {
    condition {
      age = 90
    }
    action {
      type = "Delete"
    }
  }
  depends_on = [google_project_service.storage]
}

# Cloud Storage writes usage logs as this Google group.
resource "google_storage_bucket_iam_member" "access_logs_delivery" {
  bucket = google_storage_bucket.access_logs.name
  role   = "roles/storage.objectCreator"
  member = "group:cloud-storage-analytics@google.com"
}

resource "google_storage_bucket" "state" {
  name                        = local.state_bucket
  project                     = var.project
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  versioning {
    enabled = true
  }
  # Earlier versions of state objects are kept for a month, then removed.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
  logging {
    log_bucket        = google_storage_bucket.access_logs.name
    log_object_prefix = "state/"
  }
  depends_on = [google_project_service.storage]
}

resource "google_storage_bucket" "audit" {
  name                        = local.audit_bucket
  project                     = var.project
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  versioning {
    enabled = true
  }
  # Every audit record stays 730 days. A locked policy cannot be
  # shortened or removed by anyone (escher.toml [gcp] lock_audit_retention).
  retention_policy {
    retention_period = 63072000
    is_locked        = true
  }
  logging {
    log_bucket        = google_storage_bucket.access_logs.name
    log_object_prefix = "audit/"
  }
  depends_on = [google_project_service.storage]
}

# Who runs the handler, and who calls it (Pub/Sub push and the scheduler sign as this one).
resource "google_service_account" "handler" {
  project      = var.project
  account_id   = "acme-escher-handler"
  display_name = "Escher Extend handler (acme-escher)"
  description  = "Runs the Escher Extend handler: reads its stores and secrets, applies approved fixes."
  depends_on   = [google_project_service.iam]
}

resource "google_service_account" "invoker" {
  project      = var.project
  account_id   = "acme-escher-invoker"
  display_name = "Escher Extend invoker (acme-escher)"
  description  = "Signs the tokens Pub/Sub push and Cloud Scheduler present to the Escher Extend handler."
  depends_on   = [google_project_service.iam]
}

# Exactly the permissions the fixes and their checks call; no predefined or basic role.
resource "google_project_iam_custom_role" "remediation" {
  project     = var.project
  role_id     = "acme_escher_remediation"
  title       = "Escher Extend remediation (acme-escher)"
  description = "Escher Extend (acme-escher): exactly the permissions its fixes and checks call, nothing else."
  stage       = "GA"
  permissions = [
    "compute.firewalls.update",
    "storage.buckets.getIamPolicy",
    "storage.buckets.setIamPolicy",
  ]
  depends_on = [google_project_service.iam]
}

resource "google_project_iam_member" "handler_remediation" {
  project = var.project
  role    = google_project_iam_custom_role.remediation.name
  member  = "serviceAccount:${google_service_account.handler.email}"
}

# The handler's own data: state read and written, audit records added and read (the
# retention policy keeps them), secrets read.
resource "google_storage_bucket_iam_member" "handler_state" {
  bucket = google_storage_bucket.state.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.handler.email}"
}

resource "google_storage_bucket_iam_member" "handler_audit_create" {
  bucket = google_storage_bucket.audit.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${google_service_account.handler.email}"
}

resource "google_storage_bucket_iam_member" "handler_audit_read" {
  bucket = google_storage_bucket.audit.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.handler.email}"
}

# Webhook secrets and the other clouds' credentials: the secrets only; their values are
# added with `escher-provision credentials set`, never written here.
resource "google_secret_manager_secret" "slack_webhook_url" {
  project   = var.project
  secret_id = "acme-escher-slack-webhook-url"
  replication {
    auto {}
  }
  depends_on = [google_project_service.secretmanager]
}

resource "google_secret_manager_secret_iam_member" "slack_webhook_url" {
  project   = var.project
  secret_id = google_secret_manager_secret.slack_webhook_url.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.handler.email}"
}

resource "google_secret_manager_secret" "pagerduty_routing_key" {
  project   = var.project
  secret_id = "acme-escher-pagerduty-routing-key"
  replication {
    auto {}
  }
  depends_on = [google_project_service.secretmanager]
}

resource "google_secret_manager_secret_iam_member" "pagerduty_routing_key" {
  project   = var.project
  secret_id = google_secret_manager_secret.pagerduty_routing_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.handler.email}"
}

resource "google_secret_manager_secret" "credentials_aws" {
  project   = var.project
  secret_id = "acme-escher-credentials-aws"
  replication {
    auto {}
  }
  depends_on = [google_project_service.secretmanager]
}

resource "google_secret_manager_secret_iam_member" "credentials_aws" {
  project   = var.project
  secret_id = google_secret_manager_secret.credentials_aws.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.handler.email}"
}

resource "google_secret_manager_secret" "credentials_azure" {
  project   = var.project
  secret_id = "acme-escher-credentials-azure"
  replication {
    auto {}
  }
  depends_on = [google_project_service.secretmanager]
}

resource "google_secret_manager_secret_iam_member" "credentials_azure" {
  project   = var.project
  secret_id = google_secret_manager_secret.credentials_azure.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.handler.email}"
}

# The handler: alerts on /alerts (Pub/Sub push), the nightly scan on /scan (Cloud Scheduler).
# Internal ingress: Pub/Sub and Cloud Scheduler of the same project still reach it; the
# internet does not. Not deletion-protected, so that deleting the Infrastructure Manager
# deployment removes it; the audit bucket's retention keeps the records regardless.
resource "google_cloud_run_v2_service" "handler" {
  name                = "acme-escher"
  project             = var.project
  location            = var.region
  description         = "Escher Extend (acme-escher): handles alerts and runs the nightly scan."
  ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  deletion_protection = false
  template {
    service_account                  = google_service_account.handler.email
    timeout                          = "1800s"
    max_instance_request_concurrency = 10
    scaling {
      min_instance_count = 0
      max_instance_count = 10
    }
    containers {
      image = var.handler_image
      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
      }
      env {
        name  = "ESCHER_STATE_URI"
        value = "gcs://${google_storage_bucket.state.name}/state"
      }
      env {
        name  = "ESCHER_APPROVALS_URI"
        value = "gcs://${google_storage_bucket.state.name}/approvals"
      }
      env {
        name  = "ESCHER_AUDIT_URI"
        value = "gcs://${google_storage_bucket.audit.name}/audit"
      }
      env {
        name  = "ESCHER_SECRETS_PREFIX"
        value = "acme-escher-"
      }
      env {
        name  = "ESCHER_TIME_ZONE"
        value = "Europe/Berlin"
      }
      env {
        name  = "ESCHER_SCAN_TIME"
        value = "03:30"
      }
      env {
        name  = "ESCHER_CLAIM_LEASE_SECS"
        value = "1860"
      }
      env {
        name  = "ESCHER_GCP_PROJECT"
        value = var.project
      }
      env {
        name  = "ESCHER_OIDC_AUDIENCE"
        value = local.oidc_audience
      }
      env {
        name  = "ESCHER_INVOKER_SERVICE_ACCOUNT"
        value = google_service_account.invoker.email
      }
    }
  }
  depends_on = [google_project_service.run]
}

resource "google_cloud_run_v2_service_iam_member" "invoker" {
  project  = var.project
  location = google_cloud_run_v2_service.handler.location
  name     = google_cloud_run_v2_service.handler.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.invoker.email}"
}

# Pub/Sub signs push requests as the invoker.
resource "google_service_account_iam_member" "pubsub_signs_as_invoker" {
  service_account_id = google_service_account.invoker.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${local.pubsub_agent}"
}

# Alerts: admin-activity audit logs, Cloud Monitoring incidents and Security Command
# Center findings arrive on one topic, pushed to the handler.
resource "google_pubsub_topic" "alerts" {
  #checkov:skip=CKV_GCP_83:Google encrypts messages at rest; the topic carries audit-log entries and alert metadata, and a customer-managed key ring could never be deleted with the deployment
  name                       = "acme-escher-alerts"
  project                    = var.project
  message_retention_duration = "604800s"
  depends_on                 = [google_project_service.pubsub]
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Google encrypts messages at rest; the topic holds only alerts the handler could not take, and a customer-managed key ring could never be deleted with the deployment
  name                       = "acme-escher-alerts-dead-letter"
  project                    = var.project
  message_retention_duration = "604800s"
  depends_on                 = [google_project_service.pubsub]
}

resource "google_pubsub_subscription" "alerts_push" {
  name                       = "acme-escher-alerts-push"
  project                    = var.project
  topic                      = google_pubsub_topic.alerts.id
  ack_deadline_seconds       = 600
  message_retention_duration = "604800s"
  expiration_policy {
    ttl = ""
  }
  push_config {
    push_endpoint = "${google_cloud_run_v2_service.handler.uri}/alerts"
    oidc_token {
      service_account_email = google_service_account.invoker.email
      audience              = local.oidc_audience
    }
  }
  # An alert the handler keeps failing on is kept on the dead-letter topic, not lost.
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = 10
  }
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }
  depends_on = [google_cloud_run_v2_service_iam_member.invoker, google_service_account_iam_member.pubsub_signs_as_invoker]
}

# Holds dead-lettered alerts for a week, to read and replay.
resource "google_pubsub_subscription" "dead_letter_hold" {
  name                       = "acme-escher-alerts-dead-letter-hold"
  project                    = var.project
  topic                      = google_pubsub_topic.dead_letter.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  expiration_policy {
    ttl = ""
  }
}

# The Pub/Sub service agent moves undeliverable alerts to the dead-letter topic.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${local.pubsub_agent}"
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  project      = var.project
  subscription = google_pubsub_subscription.alerts_push.name
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${local.pubsub_agent}"
}

# The changes the fixes care about, from the admin-activity audit logs.
resource "google_logging_project_sink" "admin_activity" {
  name                   = "acme-escher-admin-activity"
  project                = var.project
  destination            = "pubsub.googleapis.com/${google_pubsub_topic.alerts.id}"
  filter                 = "logName:\"cloudaudit.googleapis.com%2Factivity\" AND ((protoPayload.serviceName=\"storage.googleapis.com\" AND protoPayload.methodName=(\"storage.setIamPermissions\" OR \"storage.buckets.update\" OR \"storage.buckets.create\")) OR (protoPayload.serviceName=\"compute.googleapis.com\" AND protoPayload.methodName=~\"compute\\.(firewalls\\.(insert|patch|update)|instances\\.insert)$\"))"
  unique_writer_identity = true
  depends_on             = [google_project_service.logging]
}

resource "google_pubsub_topic_iam_member" "sink_publisher" {
  project = var.project
  topic   = google_pubsub_topic.alerts.name
  role    = "roles/pubsub.publisher"
  member  = google_logging_project_sink.admin_activity.writer_identity
}

# Cloud Monitoring incidents reach the handler through this channel.
resource "google_monitoring_notification_channel" "alerts_topic" {
  project      = var.project
  display_name = "Escher Extend alerts (acme-escher)"
  type         = "pubsub"
  labels = {
    topic = google_pubsub_topic.alerts.id
  }
  depends_on = [google_project_service.monitoring]
}

resource "google_pubsub_topic_iam_member" "monitoring_publisher" {
  project = var.project
  topic   = google_pubsub_topic.alerts.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${local.monitoring_agent}"
}

# Security Command Center findings of organization 123456789012.
resource "google_scc_notification_config" "findings" {
  config_id    = "acme-escher-findings"
  organization = "123456789012"
  description  = "Escher Extend (acme-escher): active findings to the handler."
  pubsub_topic = google_pubsub_topic.alerts.id
  streaming_config {
    filter = "state = \"ACTIVE\""
  }
  depends_on = [google_project_service.securitycenter]
}

resource "google_pubsub_topic_iam_member" "scc_publisher" {
  project = var.project
  topic   = google_pubsub_topic.alerts.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:service-org-123456789012@gcp-sa-scc-notification.iam.gserviceaccount.com"
}

# The nightly scan at 03:30 Europe/Berlin. An attempt that runs out of time is retried,
# and the retry continues the night's run where it stopped.
resource "google_cloud_scheduler_job" "nightly_scan" {
  name             = "acme-escher-nightly-scan"
  project          = var.project
  region           = var.region
  description      = "Escher Extend (acme-escher): the nightly scan and the morning report."
  schedule         = "30 3 * * *"
  time_zone        = "Europe/Berlin"
  attempt_deadline = "1800s"
  retry_config {
    retry_count          = 5
    min_backoff_duration = "60s"
    max_backoff_duration = "600s"
    max_doublings        = 2
  }
  http_target {
    http_method = "POST"
    uri         = "${google_cloud_run_v2_service.handler.uri}/scan"
    body        = base64encode("{\"escher\":\"nightly-scan\"}")
    headers = {
      "Content-Type" = "application/json"
    }
    oidc_token {
      service_account_email = google_service_account.invoker.email
      audience              = local.oidc_audience
    }
  }
  depends_on = [google_project_service.cloudscheduler, google_cloud_run_v2_service_iam_member.invoker]
}

# CRITICAL and HIGH notices by e-mail and SMS: the handler logs each notice as one
# JSON line; a log-based alert policy per severity finds it and notifies its channels.
resource "google_monitoring_notification_channel" "critical_email_d876c66bad" {
  project      = var.project
  display_name = "Escher Extend CRITICAL: oncall@example.com"
  type         = "email"
  labels = {
    email_address = "oncall@example.com"
  }
  depends_on = [google_project_service.monitoring]
}

resource "google_monitoring_notification_channel" "critical_email_0006e1aaed" {
  project      = var.project
  display_name = "Escher Extend CRITICAL: cto@example.com"
  type         = "email"
  labels = {
    email_address = "cto@example.com"
  }
  depends_on = [google_project_service.monitoring]
}

resource "google_monitoring_notification_channel" "critical_sms_536afd523e" {
  project      = var.project
  display_name = "Escher Extend CRITICAL: +4915112345678"
  type         = "sms"
  labels = {
    number = "+4915112345678"
  }
  depends_on = [google_project_service.monitoring]
}

resource "google_monitoring_notification_channel" "high_email_af3c82544f" {
  project      = var.project
  display_name = "Escher Extend HIGH: ops@example.com"
  type         = "email"
  labels = {
    email_address = "ops@example.com"
  }
  depends_on = [google_project_service.monitoring]
}

resource "google_monitoring_alert_policy" "critical_notices" {
  project      = var.project
  display_name = "Escher Extend: CRITICAL"
  combiner     = "OR"
  severity     = "CRITICAL"
  conditions {
    display_name = "A CRITICAL notice from the Escher Extend handler"
    condition_matched_log {
      filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"acme-escher\" AND jsonPayload.escher_notice.severity=\"CRITICAL\""
      label_extractors = {
        title    = "EXTRACT(jsonPayload.escher_notice.title)"
        event_id = "EXTRACT(jsonPayload.escher_notice.event_id)"
      }
    }
  }
  alert_strategy {
    notification_rate_limit {
      period = "300s"
    }
    auto_close = "1800s"
  }
  notification_channels = [
    google_monitoring_notification_channel.critical_email_d876c66bad.id,
    google_monitoring_notification_channel.critical_email_0006e1aaed.id,
    google_monitoring_notification_channel.critical_sms_536afd523e.id,
  ]
  documentation {
    content   = "A CRITICAL event or a failed remediation. The notice's title and event id are in the incident's labels; `escher-provision audit` shows what was done."
    mime_type = "text/markdown"
  }
  depends_on = [google_project_service.monitoring]
}

resource "google_monitoring_alert_policy" "high_notices" {
  project      = var.project
  display_name = "Escher Extend: HIGH"
  combiner     = "OR"
  severity     = "ERROR"
  conditions {
    display_name = "A HIGH notice from the Escher Extend handler"
    condition_matched_log {
      filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"acme-escher\" AND jsonPayload.escher_notice.severity=\"HIGH\""
      label_extractors = {
        title    = "EXTRACT(jsonPayload.escher_notice.title)"
        event_id = "EXTRACT(jsonPayload.escher_notice.event_id)"
      }
    }
  }
  alert_strategy {
    notification_rate_limit {
      period = "300s"
    }
    auto_close = "1800s"
  }
  notification_channels = [
    google_monitoring_notification_channel.high_email_af3c82544f.id,
  ]
  documentation {
    content   = "A HIGH event or a remediation report. The notice's title and event id are in the incident's labels; `escher-provision audit` shows what was done."
    mime_type = "text/markdown"
  }
  depends_on = [google_project_service.monitoring]
}


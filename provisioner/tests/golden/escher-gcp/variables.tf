# The values terraform.tfvars gives (filled from escher.toml); handler_image is set when the
# handler's container image has been pushed.

variable "project" {
  description = "The project to deploy Escher Extend into (its id)."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Run service, the buckets and the scheduler job."
  type        = string
}

variable "handler_image" {
  description = "The handler's container image (Artifact Registry), by digest."
  type        = string
}

output "eks_cluster_name" {
  description = "EKS cluster name (aws eks update-kubeconfig --name ...)."
  value       = aws_eks_cluster.this.name
}

output "irsa_role_arns" {
  description = "IRSA role per service account (manifests/overlays/<env> annotations)."
  value       = { for k, r in aws_iam_role.irsa : "creditops-${k}" => r.arn }
}

output "postgres_host" {
  description = "Private name of the RDS instance."
  value       = aws_route53_record.postgres.fqdn
}

output "postgres_master_secret_arn" {
  description = "Secrets Manager secret of the RDS master password (managed by RDS)."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "redis_host" {
  description = "Private name of the ElastiCache primary endpoint."
  value       = aws_route53_record.redis.fqdn
}

output "redis_auth_secret_arn" {
  description = "Secrets Manager secret of the Redis AUTH token."
  value       = aws_secretsmanager_secret.redis_auth.arn
}

output "buckets" {
  description = "S3 bucket names."
  value       = { for k, b in aws_s3_bucket.this : k => b.bucket }
}

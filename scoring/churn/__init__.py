"""Online churn models: observation points, delayed labels, model registry, signed artifacts."""

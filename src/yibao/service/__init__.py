"""Settlement service: the national-platform transaction endpoint and the REST API over one service layer."""

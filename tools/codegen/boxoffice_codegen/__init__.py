"""Generate the contract artefacts (proto code, OpenAPI document) and check they are fresh."""

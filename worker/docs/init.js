// The API reference at /docs: Swagger UI over the ledger's own /openapi.json. Served as a static
// asset from the ledger itself (scripts/assets.ts), so the page needs no inline script.
window.addEventListener("DOMContentLoaded", () => {
  window.ui = window.SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // Never send the document to a third-party validator (Swagger UI's default is validator.swagger.io).
    validatorUrl: null,
    tryItOutEnabled: false,
    displayOperationId: true,
    defaultModelsExpandDepth: 0,
  });
});

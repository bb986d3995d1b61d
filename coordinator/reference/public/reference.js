// The API reference: Swagger UI over this coordinator's own /openapi.json.
// Everything it loads comes from the coordinator (no CDN); the validator
// badge, which would send the document to validator.swagger.io, is off.
/* global SwaggerUIBundle */
window.addEventListener("DOMContentLoaded", () => {
  SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#reference",
    validatorUrl: null,
    deepLinking: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    tryItOutEnabled: false,
  });
});

// Where the console finds the API. Served by the local stack, the API is the page's own origin.
// Deployed as static files (README, "The console"), replace this file with, for example:
//   window.LORAPIN = { api: "https://abc123.execute-api.eu-west-1.amazonaws.com", localTokens: false };
window.LORAPIN = window.LORAPIN || { api: "", localTokens: true };

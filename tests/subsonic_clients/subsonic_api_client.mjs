// Drives the subsonic-api npm package against a Subsonic server.
//
//     node subsonic_api_client.mjs ok|wrong URL USER SECRET [apikey]
//
// ok:    ping with token+salt as a GET and as a form-encoded POST, and (with `apikey`) with
//        OpenSubsonic's apiKey; every answer must be status "ok".
// wrong: the same with SECRET as a wrong password; every answer must be status "failed" with
//        error code 40 (or 44 for a wrong apiKey, as OpenSubsonic's apiKeyAuthentication says).
// Prints one line per request; exits non-zero on the first unexpected answer.
import { SubsonicAPI } from "subsonic-api";

const [mode, url, username, secret, withApiKey] = process.argv.slice(2);

const ways = [
  ["token GET", { url, auth: { username, password: secret } }],
  ["token POST", { url, auth: { username, password: secret }, post: true }],
];
if (withApiKey === "apikey") {
  ways.push(["apiKey GET", { url, auth: { apiKey: secret } }]);
  ways.push(["apiKey POST", { url, auth: { apiKey: secret }, post: true }]);
}

for (const [name, config] of ways) {
  const answer = await new SubsonicAPI(config).ping();
  if (mode === "ok") {
    if (answer?.status !== "ok") {
      console.error(`subsonic-api ${name}: ${JSON.stringify(answer)}`);
      process.exit(1);
    }
    console.log(`subsonic-api ${name} ping ok`);
  } else {
    const want = name.startsWith("apiKey") ? 44 : 40;
    if (answer?.status !== "failed" || answer?.error?.code !== want) {
      console.error(`subsonic-api ${name}: wanted error ${want}: ${JSON.stringify(answer)}`);
      process.exit(1);
    }
    console.log(`subsonic-api ${name} refused with code ${want}`);
  }
}

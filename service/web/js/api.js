/*
 * Requests to the service. The one path written here is where the page's configuration is read
 * (the <meta name="matconcept-meta"> of map.html); every other path comes from that answer,
 * GET /v1/map/meta. Errors are {"error": {"code", "reason", "message"}}; the message is shown.
 */

const META_SELECTOR = 'meta[name="matconcept-meta"]';

export class HttpError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The readable message of an error answer (never a raw body or a stack). */
export function errorMessage(status, text) {
  try {
    const body = JSON.parse(text);
    if (body && body.error && body.error.message) {
      return body.error.message;
    }
    if (body && typeof body.detail === "string") {
      return body.detail;
    }
  } catch (e) {
    // not JSON: fall through to a generic message
  }
  if (status === 0) {
    return "the service did not answer (network error)";
  }
  return `the service answered HTTP ${status} without an error message`;
}

export async function requestJSON(url, options) {
  let response;
  try {
    response = await fetch(url, Object.assign({ headers: { accept: "application/json" } }, options || {}));
  } catch (e) {
    throw new HttpError(0, "the service did not answer (network error)");
  }
  const text = await response.text();
  if (!response.ok) {
    let code = null;
    try {
      code = JSON.parse(text).error.code;
    } catch (e) {
      code = null;
    }
    throw new HttpError(response.status, errorMessage(response.status, text), code);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HttpError(response.status, "the service answered with something that is not JSON");
  }
}

export function postJSON(url, body) {
  return requestJSON(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(body),
  });
}

/** The page's configuration: API paths and colour fields (GET /v1/map/meta). */
export function loadMeta() {
  const tag = document.querySelector(META_SELECTOR);
  if (!tag || !tag.content) {
    return Promise.reject(new HttpError(0, `the page has no ${META_SELECTOR} naming its configuration`));
  }
  return requestJSON(tag.content);
}

/** The record of a stored material: /v1/materials/cod:1000000 (":" is fine in a path). */
export function materialUrl(prefix, id) {
  return prefix + encodeURIComponent(id).replace(/%3A/gi, ":");
}

/**
 * POST a multipart form with upload progress (XMLHttpRequest: fetch has no upload events).
 * `onProgress(fraction)` while the body is sent, `onSent()` once it is (the service is then working);
 * resolves with the JSON answer, rejects with an HttpError carrying the service's message.
 */
export function postForm(url, form, { onProgress, onSent } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("accept", "application/json");
    xhr.upload.onprogress = (e) => {
      if (onProgress && e.lengthComputable && e.total > 0) onProgress(e.loaded / e.total);
    };
    xhr.upload.onload = () => {
      if (onSent) onSent();
    };
    xhr.onload = () => {
      if (xhr.status < 200 || xhr.status >= 300) {
        let code = null;
        try {
          code = JSON.parse(xhr.responseText).error.code;
        } catch (e) {
          code = null;
        }
        reject(new HttpError(xhr.status, errorMessage(xhr.status, xhr.responseText), code));
        return;
      }
      try {
        resolve(JSON.parse(xhr.responseText));
      } catch (e) {
        reject(new HttpError(xhr.status, "the service answered with something that is not JSON"));
      }
    };
    xhr.onerror = () => reject(new HttpError(0, "the service did not answer (network error)"));
    xhr.send(form);
  });
}

/** A text answer (a structure file): the body, or an HttpError with the service's message. */
export async function requestText(url) {
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new HttpError(0, "the service did not answer (network error)");
  }
  const text = await response.text();
  if (!response.ok) throw new HttpError(response.status, errorMessage(response.status, text));
  return text;
}

# replica-guard: the admission webhook, on the official Node.js 24 image.
# Sources run through Node's type stripping, so there is no build step: the image holds
# the production dependencies and src/. Not built in CI (no container engine runs there):
# test/dockerfile.test.ts reads this file instead.
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only; the `node` devDependency is for npm scripts outside the image.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
COPY policies ./policies
# Nothing is written under /app, so the root filesystem can be read-only: certificates go
# to a mounted volume at this path (an emptyDir or a Secret), temporary files to /tmp.
RUN mkdir -p /var/run/replica-guard/certs && chown 1000:1000 /var/run/replica-guard/certs
# The image's `node` user, by number: Kubernetes cannot verify runAsNonRoot for a name.
USER 1000:1000
EXPOSE 8443 8080
# node itself is PID 1's program and gets SIGTERM (npm would swallow it, and the drain with it).
ENTRYPOINT ["node", "src/main.ts"]
CMD ["serve", "--certs", "/var/run/replica-guard/certs"]

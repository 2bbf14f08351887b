# replica-guard: the admission webhook, on the official Node.js 24 LTS image.
# Sources run through Node's type stripping, so there is no build step: the image holds
# the production dependencies and src/.
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# The `node` devDependency is only for running npm scripts on Node 24 outside the image.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
COPY policies ./policies
# The image's unprivileged user; certificates and policies are mounted read-only.
USER node
EXPOSE 8443 8080
ENTRYPOINT ["node", "src/main.ts"]
CMD ["serve"]

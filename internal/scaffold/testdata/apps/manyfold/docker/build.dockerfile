FROM ruby:3.4-alpine AS build
COPY . .

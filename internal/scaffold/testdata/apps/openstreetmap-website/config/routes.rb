OpenStreetMap::Application.routes.draw do
  get "/api/capabilities" => "api/capabilities#show"
end

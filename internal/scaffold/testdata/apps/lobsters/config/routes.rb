Rails.application.routes.draw do
  root to: "home#index"
  get "/upvoted/stories" => "home#upvoted"
end

Rails.application.routes.draw do
  get 'trial/upgrade', to: 'trial/upgrades#show', as: :trial_upgrade

  namespace :api do
    namespace :v1 do
      get   'health', to: 'health#index'
      resources :points, only: %i[index create]
    end
  end
end
